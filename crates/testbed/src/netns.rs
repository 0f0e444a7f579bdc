//! Network namespaces for tests: a guard that creates a namespace with a
//! unique name and deletes it (killing what still runs inside) on drop, so a
//! failing test leaves nothing behind; and the privilege probe that decides
//! whether kernel tests run or skip.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Prefix of every namespace a test creates; `stale_cleanup` removes
/// leftovers of killed test runs by it.
pub const PREFIX: &str = "rstest";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether this process may create namespaces and packet sockets. When it may
/// not, prints why the calling test is skipped and returns false.
pub fn privileged(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u64 = 1 << 12;
    const CAP_NET_RAW: u64 = 1 << 13;
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    let needed = CAP_NET_ADMIN | CAP_NET_RAW | CAP_SYS_ADMIN;
    if cap_eff & needed != needed {
        println!("skipped {test}: needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN (run as root)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!("skipped {test}: the `ip` command (iproute2) is not installed");
        return false;
    }
    true
}

/// Runs `program args` and returns its output, panicking with its stderr when
/// it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A network namespace that exists as long as this guard.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace named `rstest-<pid>-<n>-<label>` with its loopback up.
    pub fn new(label: &str) -> Self {
        stale_cleanup();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}-{}-{n}-{label}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, for setns.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// Runs `program args` inside the namespace; panics if it fails.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `ip args` inside the namespace; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A command that will run inside the namespace, to spawn.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `body` on a new thread that entered this namespace; sockets it
    /// opens live there.
    pub fn spawn<R: Send + 'static>(&self, body: impl FnOnce() -> R + Send + 'static) -> std::thread::JoinHandle<R> {
        let path = self.path();
        std::thread::spawn(move || {
            af_packet::netns::enter_thread(&path).expect("enter the test namespace");
            body()
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

fn delete(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).status();
}

/// Deletes namespaces left by test processes that no longer run (killed by a
/// timeout, say).
fn stale_cleanup() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete(name);
        }
    }
}

/// A veth pair between two namespaces: `a_if` in `a`, `b_if` in `b`, both up.
pub fn veth_pair(a: &NetNs, a_if: &str, b: &NetNs, b_if: &str) {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}
