//! Child processes of the kernel tests: a command run inside a namespace,
//! its stderr collected line by line so a test can wait for what it
//! prints, stopped by a signal with its exit code and every line it wrote.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process whose stderr lines are collected.
pub(crate) struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the command starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for `count` stderr lines containing `needle`.
    pub(crate) fn wait_for(&mut self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut found = 0;
        while found < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    found += usize::from(line.contains(needle));
                    self.seen.push(line);
                }
                Err(_) => panic!("no {count} lines with {needle:?}: {:?}", self.seen),
            }
        }
    }

    /// Waits for a stderr line containing every one of `needles` (one
    /// already read counts too).
    pub(crate) fn wait_for_all(&mut self, needles: &[&str]) -> String {
        let matches = |line: &str| needles.iter().all(|needle| line.contains(needle));
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with all of {needles:?}: {:?}", self.seen),
            }
        }
    }

    /// The child's pid (`ip netns exec` execs its program in place, so it
    /// is the program's).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal`, waits, returns the exit code and every stderr line.
    pub(crate) fn stop(mut self, signal: &str) -> (i32, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args([signal, &pid]).status();
        let status = self.child.wait().expect("the child exits");
        self.seen.extend(self.lines.iter());
        (status.code().unwrap_or(-1), std::mem::take(&mut self.seen))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ringsieve run` as the live tests start the agent in namespace `host`:
/// two workers, no stats events, info logs, flow records to `eve`, the
/// metrics endpoint on `metrics_port` when given, then `extra_args`;
/// returned once its capture has started.
pub(crate) fn start_agent(
    host: &str,
    eve: &std::path::Path,
    metrics_port: Option<u16>,
    extra_args: &[&std::ffi::OsStr],
) -> Watched {
    let mut command = in_namespace(host, env!("CARGO_BIN_EXE_ringsieve"));
    command
        .args(["run", "--workers", "2", "--stats-interval", "0", "--eve"])
        .arg(eve)
        .env("RUST_LOG", "info");
    if let Some(port) = metrics_port {
        command.arg("--metrics").arg(port.to_string());
    }
    command.args(extra_args);
    let mut agent = Watched::spawn(command);
    agent.wait_for("capture started", 1);
    agent
}

/// tcpdump on `interface` in `namespace`, writing the frames that match
/// `filter` to `file` (not promiscuous, whole frames, each written as it
/// arrives): what the kernel carried there, the yardstick of a capture.
/// Returned once it listens; stop it with SIGINT for its drop count.
pub(crate) fn tcpdump(namespace: &str, interface: &str, filter: &str, file: &std::path::Path) -> Watched {
    let mut command = in_namespace(namespace, "tcpdump");
    command
        .args([
            "-i",
            interface,
            "-p",
            "-n",
            "-s",
            "0",
            "-B",
            "65536",
            "--immediate-mode",
            "-U",
            "-Z",
            "root",
            "-w",
        ])
        .arg(file)
        .arg(filter);
    let mut tcpdump = Watched::spawn(command);
    tcpdump.wait_for("listening on", 1);
    tcpdump
}

pub(crate) fn in_namespace(namespace: &str, program: &str) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", namespace, program]);
    command
}
