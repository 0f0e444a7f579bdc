//! Validated settings: the raw strings of [`crate::cli`] turned into typed
//! values, with no system call. A bad value becomes a [`SettingError`] that
//! names where it came from (the flag or the environment variable), the value,
//! and what is accepted; the binary exits with code 2 on it.

use std::fmt;

use af_packet::{FanoutMode, RingGeometry};
use clap::parser::ValueSource;
use clap::ArgMatches;
use pipeline::worker_pool::{Overflow, PoolClock, PoolConfig};

/// A setting whose value is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// `--flag` or `RINGSIEVE_VARIABLE`, whichever supplied the value.
    pub source: String,
    /// The value given.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value {:?} for {}: {}",
            self.value, self.source, self.expected
        )
    }
}

impl std::error::Error for SettingError {}

/// Where the value of one option came from, for error messages.
pub struct Origin<'a> {
    subcommand: &'static str,
    matches: &'a ArgMatches,
}

impl<'a> Origin<'a> {
    /// Origins of the options in `matches`, the matches of `subcommand`.
    pub fn new(subcommand: &'static str, matches: &'a ArgMatches) -> Self {
        Self { subcommand, matches }
    }

    /// `--flag` when given on the command line, the variable when it came
    /// from the environment, the flag (default) otherwise.
    pub fn of(&self, id: &str) -> String {
        let arg = self.arg(id);
        let flag = arg
            .as_ref()
            .and_then(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .unwrap_or_else(|| id.to_owned());
        match self.matches.value_source(id) {
            Some(ValueSource::EnvVariable) => arg
                .as_ref()
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or(flag),
            Some(ValueSource::DefaultValue) => format!("{flag} (default)"),
            _ => flag,
        }
    }

    /// Whether `id`'s value came from its environment variable.
    pub fn is_env(&self, id: &str) -> bool {
        self.matches.value_source(id) == Some(ValueSource::EnvVariable)
    }

    fn arg(&self, id: &str) -> Option<clap::Arg> {
        use clap::CommandFactory;
        let command = crate::cli::Cli::command();
        let found = command
            .find_subcommand(self.subcommand)
            .and_then(|sub| sub.get_arguments().find(|a| a.get_id() == id))
            .cloned();
        found
    }

    /// A [`SettingError`] for option `id` with `value`.
    pub fn error(&self, id: &str, value: &str, expected: impl Into<String>) -> SettingError {
        SettingError {
            source: self.of(id),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }
}

/// Parses a byte size: a number with an optional K, M or G suffix (powers of
/// 1024, `KiB`/`k`/`KB` spellings accepted).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// Parses a boolean the way environment variables usually spell one.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses boolean option `id`, naming it on a bad value.
fn bool_setting(origin: &Origin<'_>, id: &str, text: &str) -> Result<bool, SettingError> {
    parse_bool(text).ok_or_else(|| origin.error(id, text, "true or false (also 1/0, yes/no, on/off)"))
}

/// Ring geometry overrides given on the command line; `None` keeps the
/// role's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeometryOverrides {
    /// `--block-size`.
    pub block_size: Option<u32>,
    /// `--block-count`.
    pub block_count: Option<u32>,
    /// `--retire-timeout`.
    pub retire_timeout_ms: u32,
}

impl GeometryOverrides {
    /// The geometry for an interface whose role default is `base`.
    pub fn apply(&self, base: RingGeometry) -> RingGeometry {
        RingGeometry {
            block_size: self.block_size.unwrap_or(base.block_size),
            block_count: self.block_count.unwrap_or(base.block_count),
            retire_timeout_ms: self.retire_timeout_ms,
        }
    }
}

/// The validated settings of `ringsieve run`.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// Which interfaces to capture (globs included and excluded).
    pub selection: discovery::Selection,
    /// The interfaces named without a glob: they must exist at the start.
    pub literal_interfaces: Vec<String>,
    /// The pcapng output, if any (`-` is stdout).
    pub pcap_out: Option<String>,
    /// Ring geometry overrides.
    pub geometry: GeometryOverrides,
    /// Promiscuous membership on every ring.
    pub promiscuous: bool,
    /// Number of capture threads (>= 1).
    pub capture_threads: usize,
    /// CPU per capture thread, when pinned.
    pub capture_cpus: Option<Vec<usize>>,
    /// Container-veth rings kept prepared per capture thread.
    pub spare_rings: usize,
    /// Fanout mode when there is more than one capture thread.
    pub fanout: FanoutMode,
    /// The dedup engine's settings; `None` delivers every copy.
    pub dedup: Option<flow::SieveConfig>,
    /// The worker threads and what they write.
    pub pipeline: PipelineSettings,
    /// Where the Prometheus endpoint listens.
    pub metrics: Option<std::net::SocketAddr>,
    /// Whether NAT bindings are also learned from conntrack.
    pub conntrack: bool,
}

impl RunSettings {
    /// Validates the raw options of `ringsieve run`.
    pub fn from_args(args: &crate::cli::RunArgs, origin: &Origin<'_>) -> Result<Self, SettingError> {
        let mut include: Vec<String> = Vec::new();
        let mut literal_interfaces = Vec::new();
        for pattern in &args.interfaces {
            let pattern = pattern.trim();
            if pattern.is_empty() || pattern.len() > 15 || pattern.contains(['/', ' ', '\0']) {
                return Err(origin.error(
                    "interfaces",
                    pattern,
                    "an interface name or glob of 1 to 15 characters without '/' or spaces",
                ));
            }
            if !include.iter().any(|n| n == pattern) {
                include.push(pattern.to_owned());
                if !pattern.contains(['*', '?', '[']) {
                    literal_interfaces.push(pattern.to_owned());
                }
            }
        }
        for pattern in &args.exclude {
            if pattern.trim().is_empty() {
                return Err(origin.error("exclude", pattern, "an interface name or glob"));
            }
        }
        let include_refs: Vec<&str> = include.iter().map(String::as_str).collect();
        let exclude_refs: Vec<&str> = args.exclude.iter().map(|p| p.trim()).collect();
        let selection = discovery::Selection::new(&include_refs, &exclude_refs).map_err(|e| {
            let bad = args
                .interfaces
                .iter()
                .chain(&args.exclude)
                .find(|p| discovery::Glob::new(p.trim()).is_err())
                .cloned()
                .unwrap_or_default();
            let id = if args.exclude.contains(&bad) {
                "exclude"
            } else {
                "interfaces"
            };
            origin.error(id, &bad, format!("a glob of names ({e})"))
        })?;

        let block_size = match &args.block_size {
            None => None,
            Some(text) => {
                let expected = "a power of two from 4K to 64M bytes (e.g. 4096, 512K, 1M)";
                let bytes = parse_bytes(text).ok_or_else(|| origin.error("block_size", text, expected))?;
                let valid = bytes.is_power_of_two()
                    && (u64::from(af_packet::config::MIN_BLOCK_SIZE)..=u64::from(af_packet::config::MAX_BLOCK_SIZE))
                        .contains(&bytes);
                if !valid {
                    return Err(origin.error("block_size", text, expected));
                }
                Some(bytes as u32)
            }
        };
        let block_count = match &args.block_count {
            None => None,
            Some(text) => {
                let expected = "a whole number from 2 to 65536";
                let n: u32 = text
                    .trim()
                    .parse()
                    .map_err(|_| origin.error("block_count", text, expected))?;
                if !(af_packet::config::MIN_BLOCK_COUNT..=af_packet::config::MAX_BLOCK_COUNT).contains(&n) {
                    return Err(origin.error("block_count", text, expected));
                }
                Some(n)
            }
        };
        let retire_expected = "a whole number of milliseconds from 0 to 60000";
        let retire_timeout_ms: u32 = args
            .retire_timeout
            .trim()
            .parse()
            .ok()
            .filter(|&ms| ms <= af_packet::config::MAX_RETIRE_TIMEOUT_MS)
            .ok_or_else(|| origin.error("retire_timeout", &args.retire_timeout, retire_expected))?;

        let promiscuous = bool_setting(origin, "promisc", &args.promisc)?;
        let dedup_on = bool_setting(origin, "dedup_enabled", &args.dedup_enabled)?;
        let mut sieve = sieve_config(&args.dedup, origin)?;

        let threads_expected = "a whole number from 1 to 64";
        let capture_threads: usize = args
            .capture_threads
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| origin.error("capture_threads", &args.capture_threads, threads_expected))?;

        let capture_cpus = capture_cpus(origin, args.capture_cpus.as_deref(), capture_threads)?;

        let fanout = args
            .fanout
            .trim()
            .parse::<FanoutMode>()
            .map_err(|expected| origin.error("fanout", &args.fanout, expected))?;

        sieve.max_threads = capture_threads;
        let dedup = dedup_on.then_some(sieve);
        require_eve_for_rules(&args.pipeline, origin)?;
        let mut pipeline = pipeline_settings(&args.pipeline, origin, Overflow::Drop, PoolClock::Wall)?;
        pipeline.reorder_window_ns = reorder_window_ns(dedup.as_ref(), u64::from(retire_timeout_ms));
        if pipeline.eve.as_deref() == Some("-") && args.pcap_out.as_deref() == Some("-") {
            return Err(origin.error("eve", "-", "a file path: --pcap-out already writes to stdout"));
        }
        Ok(Self {
            selection,
            literal_interfaces,
            pcap_out: args.pcap_out.clone().filter(|p| !p.is_empty()),
            geometry: GeometryOverrides {
                block_size,
                block_count,
                retire_timeout_ms,
            },
            promiscuous,
            capture_threads,
            capture_cpus,
            spare_rings: parse_in_range(origin, "spare_rings", &args.spare_rings, 0..=64)? as usize,
            fanout,
            dedup,
            pipeline,
            conntrack: bool_setting(origin, "conntrack", &args.conntrack)?,
            metrics: match &args.metrics {
                None => None,
                Some(text) => Some(
                    crate::metrics::parse_address(text).map_err(|expected| origin.error("metrics", text, expected))?,
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("512K"), Some(512 << 10));
        assert_eq!(parse_bytes("1MiB"), Some(1 << 20));
        assert_eq!(parse_bytes("2g"), Some(2 << 30));
        for bad in ["", "K", "1.5M", "12X", "-1"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn run_workers_poll_when_busy_and_read_workers_never() {
        use clap::{CommandFactory, FromArgMatches};
        let parse = |args: &[&str]| {
            let matches = crate::cli::Cli::command()
                .try_get_matches_from(args)
                .expect("valid arguments");
            (
                crate::cli::Cli::from_arg_matches(&matches).expect("valid arguments"),
                matches,
            )
        };
        let (cli, matches) = parse(&["ringsieve", "run", "--worker-poll", "2500"]);
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("run")
        };
        let origin = Origin::new("run", matches.subcommand_matches("run").unwrap());
        let run = RunSettings::from_args(&args, &origin).expect("valid settings");
        assert_eq!(run.pipeline.pool.idle_poll, std::time::Duration::from_micros(2500));
        let (cli, matches) = parse(&["ringsieve", "read", "x.pcap", "--worker-poll", "2500"]);
        let crate::cli::Command::Read(args) = cli.command else {
            panic!("read")
        };
        let origin = Origin::new("read", matches.subcommand_matches("read").unwrap());
        let read = ReadSettings::from_args(&args, &origin).expect("valid settings");
        assert_eq!(read.pipeline.pool.idle_poll, std::time::Duration::ZERO);
    }

    #[test]
    fn booleans_accept_the_usual_spellings() {
        assert_eq!(parse_bool("ON"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}

/// Parses a whole number within `range`.
fn parse_in_range(
    origin: &Origin<'_>,
    id: &str,
    text: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, SettingError> {
    let expected = format!("a whole number from {} to {}", range.start(), range.end());
    match text.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(origin.error(id, text, expected)),
    }
}

/// Parses a byte size within `range` (bytes), describing it as `expected`.
fn parse_bytes_in_range(
    origin: &Origin<'_>,
    id: &str,
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    expected: &str,
) -> Result<u64, SettingError> {
    match parse_bytes(text) {
        Some(n) if range.contains(&n) => Ok(n),
        _ => Err(origin.error(id, text, expected)),
    }
}

/// The dedup engine's settings from `--dedup-*`, `--hold-budget` and
/// `--nat-bindings`.
pub fn sieve_config(args: &crate::cli::DedupArgs, origin: &Origin<'_>) -> Result<flow::SieveConfig, SettingError> {
    let window_ms = parse_in_range(origin, "dedup_window", &args.dedup_window, 1..=10_000)?;
    let table = parse_bytes_in_range(
        origin,
        "dedup_table",
        &args.dedup_table,
        1 << 10..=1 << 28,
        "a number of entries from 1K to 256M (K and M suffixes are powers of 1024)",
    )?;
    let hold = parse_bytes_in_range(
        origin,
        "hold_budget",
        &args.hold_budget,
        64 << 10..=16 << 30,
        "a size from 64K to 16G bytes (e.g. 64M)",
    )?;
    let nat_bindings = parse_bytes_in_range(
        origin,
        "nat_bindings",
        &args.nat_bindings,
        1 << 10..=64 << 20,
        "a number of connections from 1K to 64M (K and M suffixes are powers of 1024)",
    )?;
    Ok(flow::SieveConfig {
        table_capacity: table as usize,
        window_ns: window_ms * 1_000_000,
        hold_budget_bytes: hold as usize,
        // Two entries per binding: one under each side's flow hash.
        nat_capacity: 2 * nat_bindings as usize,
        memory_advice: Some(advise_huge_pages),
        ..flow::SieveConfig::default()
    })
}

/// Asks for huge pages under the dedup table; without them it still works,
/// a third slower, so a refusal is only logged.
fn advise_huge_pages(addr: usize, len: usize) {
    if let Err(error) = af_packet::memory::advise_huge_pages(addr, len) {
        tracing::debug!(%error, "no huge pages for the dedup table");
    }
}

/// The validated settings of the worker threads, shared by `run` and
/// `read`.
#[derive(Clone, Debug)]
pub struct PipelineSettings {
    /// Workers, CPUs, queues.
    pub pool: PoolConfig,
    /// The EVE output, `-` for stdout.
    pub eve: Option<String>,
    /// Between EVE `stats` events; `None` for none.
    pub stats_interval: Option<std::time::Duration>,
    /// The flow tracker's timeouts.
    pub flow_timeouts: eve::FlowTimeouts,
    /// Flows tracked at once over all workers.
    pub max_flows: usize,
    /// The signature engine, when rule files were given.
    pub detection: Option<DetectionSettings>,
    /// How late (packet time) the dedup and the rings can deliver a packet
    /// after a later one of its flow: the flow trackers put packets back
    /// in timestamp order within it (`pipeline::reorder`). Set by each
    /// subcommand from its dedup window and retire timeout.
    pub reorder_window_ns: u64,
}

/// The `--capture-cpus` list: one CPU per capture thread at least.
fn capture_cpus(
    origin: &Origin<'_>,
    text: Option<&str>,
    capture_threads: usize,
) -> Result<Option<Vec<usize>>, SettingError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let cpus = af_packet::cpu::parse_cpu_list(text)
        .map_err(|why| origin.error("capture_cpus", text, format!("a CPU list such as 0,1 or 0-3 ({why})")))?;
    if cpus.len() < capture_threads {
        return Err(origin.error(
            "capture_cpus",
            text,
            format!("one CPU per capture thread ({capture_threads} threads)"),
        ));
    }
    Ok(Some(cpus))
}

/// How late a packet can reach the workers after a later one: a dedup
/// hold lasts up to the window past the copy, ended by the next packet or
/// idle tick after it (so up to about twice the window), and a ring's
/// block waits up to the retire timeout (the kernel's choice, about 8 ms,
/// when 0). Packets later than this still reach the tracker, counted as
/// late.
pub fn reorder_window_ns(dedup: Option<&flow::SieveConfig>, retire_timeout_ms: u64) -> u64 {
    let retire = if retire_timeout_ms == 0 { 8 } else { retire_timeout_ms };
    2 * dedup.map_or(0, |config| config.window_ns) + retire * 1_000_000
}

/// The validated options of the signature engine.
#[derive(Clone, Debug)]
pub struct DetectionSettings {
    /// The rule files.
    pub rules: Vec<std::path::PathBuf>,
    /// Where they came from (`--rules` or `RINGSIEVE_RULES`), to name in
    /// an error when one cannot be read.
    pub rules_origin: String,
    /// NAME=VALUE overrides of the rule variables, checked.
    pub vars: Vec<String>,
    /// The classification file, and where it came from.
    pub classification: Option<(std::path::PathBuf, String)>,
    /// Bytes reassembled per direction.
    pub stream_depth: u64,
    /// Bytes of reassembly memory over all workers.
    pub stream_memcap: usize,
}

/// Validates the pipeline's options; `overflow` is the subcommand's default
/// policy, `clock` its clock.
pub fn pipeline_settings(
    args: &crate::cli::PipelineArgs,
    origin: &Origin<'_>,
    overflow: Overflow,
    clock: PoolClock,
) -> Result<PipelineSettings, SettingError> {
    let workers = parse_in_range(origin, "workers", &args.workers, 1..=256)? as usize;
    let cpus = match &args.worker_cpus {
        None => None,
        Some(text) => {
            let cpus = af_packet::cpu::parse_cpu_list(text)
                .map_err(|why| origin.error("worker_cpus", text, format!("a CPU list such as 1 or 2-3 ({why})")))?;
            if cpus.len() < workers {
                return Err(origin.error("worker_cpus", text, format!("one CPU per worker ({workers} workers)")));
            }
            Some(cpus)
        }
    };
    let queue_depth = parse_bytes_in_range(
        origin,
        "queue_depth",
        &args.queue_depth,
        128..=16 << 20,
        "a number of packets from 128 to 16M (K and M suffixes are powers of 1024)",
    )? as usize;
    let idle_poll = parse_in_range(origin, "worker_poll", &args.worker_poll, 0..=1_000_000)?;
    let overflow = match args.overflow.as_deref().map(str::trim) {
        None => overflow,
        Some("drop") => Overflow::Drop,
        Some("wait") => Overflow::Wait,
        Some(other) => return Err(origin.error("overflow", other, "drop or wait")),
    };
    if let Some(eve) = &args.eve {
        if eve.trim().is_empty() {
            return Err(origin.error("eve", eve, "a file path, or - for stdout"));
        }
    }
    let stats = parse_in_range(origin, "stats_interval", &args.stats_interval, 0..=86_400)?;
    let flow_timeouts = match &args.flow_timeouts {
        None => eve::FlowTimeouts::default(),
        Some(text) => text
            .parse::<eve::FlowTimeouts>()
            .map_err(|why| origin.error("flow_timeouts", text, why))?,
    };
    let max_flows = parse_bytes_in_range(
        origin,
        "max_flows",
        &args.max_flows,
        1 << 10..=256 << 20,
        "a number of flows from 1K to 256M (K and M suffixes are powers of 1024)",
    )? as usize;
    let detection = detection_settings(args, origin)?;
    Ok(PipelineSettings {
        pool: PoolConfig {
            workers,
            cpus,
            queue_depth,
            overflow,
            // The flow tracker wants them; they cost a NAT lookup per
            // suppressed copy, so only with EVE output.
            suppressed_notices: args.eve.is_some(),
            clock,
            // Offline nothing waits on a worker: it sleeps rather than take
            // a CPU the reading thread may need.
            idle_poll: match clock {
                PoolClock::Wall => std::time::Duration::from_micros(idle_poll),
                PoolClock::Packets => std::time::Duration::ZERO,
            },
            ..PoolConfig::default()
        },
        eve: args.eve.clone(),
        stats_interval: (stats > 0).then(|| std::time::Duration::from_secs(stats)),
        flow_timeouts,
        max_flows,
        detection,
        reorder_window_ns: 0,
    })
}

/// Rules need somewhere to write their alerts: `run` and `read` refuse
/// `--rules` without `--eve` (the bench writes to nowhere).
pub fn require_eve_for_rules(args: &crate::cli::PipelineArgs, origin: &Origin<'_>) -> Result<(), SettingError> {
    if args.rules.is_empty() || args.eve.is_some() {
        return Ok(());
    }
    let files: Vec<String> = args.rules.iter().map(|f| f.display().to_string()).collect();
    Err(origin.error(
        "rules",
        &files.join(","),
        "rule files together with --eve PATH (RINGSIEVE_EVE), where the alerts are written",
    ))
}

/// The rule files: `--rules` paths as given (one per flag, commas
/// included); `RINGSIEVE_RULES` (one value) split at its commas, empty
/// items left out.
fn rule_files(given: &[std::path::PathBuf], from_env: bool) -> Vec<std::path::PathBuf> {
    if !from_env {
        return given.to_vec();
    }
    use std::os::unix::ffi::OsStrExt;
    given
        .iter()
        .flat_map(|list| {
            list.as_os_str()
                .as_bytes()
                .split(|b| *b == b',')
                .filter(|item| !item.is_empty())
                .map(|item| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(item)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Validates the signature engine's options: `None` without rule files.
fn detection_settings(
    args: &crate::cli::PipelineArgs,
    origin: &Origin<'_>,
) -> Result<Option<DetectionSettings>, SettingError> {
    let stream_depth = parse_bytes_in_range(
        origin,
        "stream_depth",
        &args.stream_depth,
        0..=1 << 30,
        "a number of bytes from 0 (no limit) to 1G (K, M and G suffixes are powers of 1024)",
    )?;
    let stream_memcap = parse_bytes_in_range(
        origin,
        "stream_memcap",
        &args.stream_memcap,
        1 << 20..=64 << 30,
        "a number of bytes from 1M to 64G (K, M and G suffixes are powers of 1024)",
    )? as usize;
    let mut scratch = rules::Vars::default();
    for spec in &args.vars {
        scratch.apply_override(spec).map_err(|why| {
            origin.error(
                "vars",
                spec,
                format!("NAME=VALUE with NAME of letters, digits and _ and a value ({why})"),
            )
        })?;
    }
    if args.rules.is_empty() {
        return Ok(None);
    }
    Ok(Some(DetectionSettings {
        rules: rule_files(&args.rules, origin.is_env("rules")),
        rules_origin: origin.of("rules"),
        vars: args.vars.clone(),
        classification: args
            .classification_file
            .clone()
            .map(|path| (path, origin.of("classification_file"))),
        stream_depth: if stream_depth == 0 { u64::MAX } else { stream_depth },
        stream_memcap,
    }))
}

/// The validated settings of `ringsieve read`.
#[derive(Clone, Debug)]
pub struct ReadSettings {
    /// The input files.
    pub files: Vec<std::path::PathBuf>,
    /// The pcapng output, `-` for stdout.
    pub pcap_out: Option<String>,
    /// What the offline pipeline needs.
    pub offline: pipeline::offline::OfflineConfig,
    /// The worker threads and what they write.
    pub pipeline: PipelineSettings,
}

impl ReadSettings {
    /// Validates the options of `ringsieve read`.
    pub fn from_args(args: &crate::cli::ReadArgs, origin: &Origin<'_>) -> Result<Self, SettingError> {
        let mut roles = Vec::new();
        for text in &args.roles {
            let expected = format!("IFNAME=ROLE with ROLE one of {}", flow::TapRole::ACCEPTED);
            let (name, role) = text
                .split_once('=')
                .ok_or_else(|| origin.error("roles", text, &expected))?;
            let role = flow::TapRole::parse(role.trim()).ok_or_else(|| origin.error("roles", text, &expected))?;
            if name.trim().is_empty() {
                return Err(origin.error("roles", text, expected));
            }
            roles.push((name.trim().to_owned(), role));
        }
        let order = match args.read_order.trim() {
            "timestamp" => pipeline::offline::ReadOrder::Timestamp,
            "ring" => pipeline::offline::ReadOrder::Ring {
                retire_timeout_ns: parse_in_range(origin, "ring_timeout", &args.ring_timeout, 1..=1000)? * 1_000_000,
                seed: parse_in_range(origin, "ring_seed", &args.ring_seed, 0..=u64::MAX)?,
            },
            other => return Err(origin.error("read_order", other, "timestamp or ring")),
        };
        if let Some(out) = &args.pcap_out {
            if out.is_empty() {
                return Err(origin.error("pcap_out", out, "a file path, or - for stdout"));
            }
        }
        require_eve_for_rules(&args.pipeline, origin)?;
        let mut pipeline = pipeline_settings(&args.pipeline, origin, Overflow::Wait, PoolClock::Packets)?;
        if pipeline.eve.as_deref() == Some("-") && args.pcap_out.as_deref() == Some("-") {
            return Err(origin.error("eve", "-", "a file path: --pcap-out already writes to stdout"));
        }
        // One reading thread: one watermark to look at, not 64.
        let sieve = flow::SieveConfig {
            max_threads: 1,
            ..sieve_config(&args.dedup, origin)?
        };
        let ring_timeout_ms = match order {
            pipeline::offline::ReadOrder::Ring { retire_timeout_ns, .. } => retire_timeout_ns / 1_000_000,
            _ => 0,
        };
        pipeline.reorder_window_ns = reorder_window_ns(Some(&sieve), ring_timeout_ms);
        Ok(Self {
            files: args.files.clone(),
            pcap_out: args.pcap_out.clone(),
            offline: pipeline::offline::OfflineConfig { sieve, roles, order },
            pipeline,
        })
    }
}

/// The validated settings of `ringsieve bench`.
#[derive(Clone, Debug)]
pub struct BenchSettings {
    /// Distinct flows.
    pub flows: u64,
    /// Packets.
    pub packets: u64,
    /// Fixed frame length, or `None` for IMIX.
    pub frame_len: Option<u16>,
    /// What the payloads carry.
    pub payload: testbed::docker_mix::PayloadKind,
    /// Paced copies per second.
    pub rate: Option<u64>,
    /// Spacing of the copies' timestamps when not paced (copies per second
    /// of kernel time).
    pub timestamp_rate: u64,
    /// The worker.
    pub worker: crate::bench::BenchWorker,
    /// The dedup, or `None`.
    pub dedup: Option<flow::SieveConfig>,
    /// The CPU the capture thread is pinned to, if any.
    pub capture_cpu: Option<usize>,
    /// Workers and queues.
    pub pipeline: PipelineSettings,
}

impl BenchSettings {
    /// Validates the options of `ringsieve bench`.
    pub fn from_args(args: &crate::cli::BenchArgs, origin: &Origin<'_>) -> Result<Self, SettingError> {
        let flows = parse_bytes_in_range(
            origin,
            "flows",
            &args.flows,
            1..=16 << 20,
            "a number of flows from 1 to 16M (K and M suffixes are powers of 1024)",
        )?;
        let packets = parse_bytes_in_range(
            origin,
            "packets",
            &args.packets,
            1..=1 << 30,
            "a number of packets from 1 to 1G (K, M and G suffixes are powers of 1024)",
        )?;
        let frame_len = match args.frame_size.trim() {
            "imix" => None,
            text => Some(parse_in_range(origin, "frame_size", text, 55..=1514)? as u16),
        };
        let payload = args
            .payload
            .trim()
            .parse()
            .map_err(|_| origin.error("payload", &args.payload, "random or http"))?;
        let rate = match &args.rate {
            None => None,
            Some(text) => Some(parse_in_range(origin, "rate", text, 1000..=100_000_000)?),
        };
        let worker = match args.worker.trim() {
            "null" => crate::bench::BenchWorker::Null,
            "flows" => crate::bench::BenchWorker::Flows,
            "ids" if args.pipeline.rules.is_empty() => {
                return Err(origin.error("worker", "ids", "null or flows, or ids together with --rules FILE"))
            }
            "ids" => crate::bench::BenchWorker::Ids,
            other => return Err(origin.error("worker", other, "null, flows or ids")),
        };
        let dedup_on = bool_setting(origin, "dedup_enabled", &args.dedup_enabled)?;
        let sieve = flow::SieveConfig {
            max_threads: 1,
            ..sieve_config(&args.dedup, origin)?
        };
        Ok(Self {
            flows,
            packets,
            frame_len,
            payload,
            rate,
            timestamp_rate: 20_000_000,
            worker,
            pipeline: PipelineSettings {
                reorder_window_ns: reorder_window_ns(dedup_on.then_some(&sieve), 8),
                ..pipeline_settings(&args.pipeline, origin, Overflow::Wait, PoolClock::Wall)?
            },
            dedup: dedup_on.then_some(sieve),
            capture_cpu: capture_cpus(origin, args.capture_cpus.as_deref(), 1)?.map(|cpus| cpus[0]),
        })
    }
}
