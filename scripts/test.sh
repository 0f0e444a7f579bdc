#!/usr/bin/env bash
# The test command of the README: unit tests of every crate and the kernel
# integration tests (network namespaces, veth pairs, packet sockets). As root
# everything runs; unprivileged, kernel tests print why they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --release --bins
cargo test --workspace --all-targets
