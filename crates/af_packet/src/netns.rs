//! Entering a network namespace from the calling thread, so one process can
//! capture inside a namespace it did not start in (tests, and later the
//! discovery of container namespaces).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::sys::{syscall, Syscall};

/// Moves the calling thread into the network namespace at `path` (for
/// example `/var/run/netns/NAME` or `/proc/PID/ns/net`). Only this thread
/// moves; sockets it opens afterwards belong to that namespace.
pub fn enter_thread(path: &Path) -> io::Result<()> {
    let ns = File::open(path)?;
    syscall(Syscall::SetNetNs { fd: ns.as_raw_fd() })
        .map(drop)
        .map_err(|e| io::Error::new(e.io_error.kind(), format!("{} ({})", e, path.display())))
}
