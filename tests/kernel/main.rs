//! Kernel integration tests: everything that needs real network namespaces,
//! veth pairs and packet sockets. One test binary, one module per area.
//!
//! Each test builds its own namespaces through [`netns::NetNs`], which deletes
//! them on every exit path, and skips with a printed reason when the process
//! lacks CAP_NET_ADMIN and CAP_NET_RAW. CI runs as root, so there they run.

mod capture;
mod interfaces_cmd;
mod live_agent;
mod live_alerts;
mod live_containers;
mod live_dedup;
mod live_pipeline;
mod netns;
mod process;
mod run_command;
mod testbed;
