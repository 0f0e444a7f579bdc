#!/usr/bin/env bash
# One-time setup of a fresh Debian/Ubuntu machine for ringsieve: the kernel
# tools the test bed and the tests drive (iproute2, iptables), the capture
# tools they compare against (tcpdump, tshark, netsniff-ng), and rustfmt and
# clippy for the checks. Needs root for apt-get; idempotent.
set -euo pipefail

packages=(
  iproute2 iptables ethtool procps kmod
  tcpdump tshark netsniff-ng
  iputils-ping jq util-linux curl coreutils
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: installing ${missing[*]} needs root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; answer no, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

cargo build --workspace --release --bins
echo "setup: done"
