//! The command line: every subcommand and option, defined once. Each option
//! also reads a `RINGSIEVE_<OPTION>` environment variable (the flag wins), and
//! its help text names that variable, so `--help` is the reference.
//!
//! Parsing happens in two stages, as ripgrep does: clap collects raw strings
//! here, then [`crate::settings`] validates them into typed values without any
//! system call, naming the flag or variable a bad value came from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ringsieve: every packet crossing a Docker host, once.
#[derive(Debug, Parser)]
#[command(name = "ringsieve", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture on interfaces until SIGINT or SIGTERM, writing each packet
    /// once (the copies other interfaces show are suppressed) to pcapng and
    /// the counters as JSON on the last line of stderr.
    Run(RunArgs),
    /// Run the dedup over capture files (pcap, pcapng, `tcpdump -i any`
    /// cooked captures), writing the delivered packets to pcapng and the
    /// counters as JSON on the last line of stderr.
    Read(ReadArgs),
    /// Show the configuration `ringsieve run` would have with these options
    /// and this environment: each setting, its value, and where it came
    /// from (flag, RINGSIEVE_* variable or default). Exits 2 on a bad value.
    Config(InterfacesArgs),
    /// List this namespace's interfaces: role, container, ring size,
    /// promiscuity, and whether `ringsieve run` with the same options would
    /// capture it.
    Interfaces(InterfacesArgs),
    /// Run the live pipeline (dedup, fan-out, workers) on synthetic
    /// Docker-host traffic in memory and print its speed as JSON.
    Bench(BenchArgs),
}

/// Options of `ringsieve interfaces` and `ringsieve config`: those of
/// `run`, and the format.
#[derive(Debug, Args)]
pub struct InterfacesArgs {
    /// One JSON object per interface, in an array, instead of a table.
    #[arg(long)]
    pub json: bool,

    /// The options `ringsieve run` would be given.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of `ringsieve bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Distinct flows in the traffic.
    #[arg(long, env = "RINGSIEVE_BENCH_FLOWS", value_name = "N", default_value = "100000")]
    pub flows: String,

    /// Packets to send (each captured 2.6 times on average).
    #[arg(long, env = "RINGSIEVE_BENCH_PACKETS", value_name = "N", default_value = "1000000")]
    pub packets: String,

    /// Frame length in bytes, 55 to 1514, or imix.
    #[arg(long, env = "RINGSIEVE_BENCH_FRAME_SIZE", value_name = "BYTES", default_value = "64")]
    pub frame_size: String,

    /// What the TCP payloads carry: random (bytes) or http (an HTTP/1.1
    /// conversation per flow, requests and responses, contiguous in
    /// sequence space, for --worker ids).
    #[arg(long, env = "RINGSIEVE_BENCH_PAYLOAD", value_name = "KIND", default_value = "random")]
    pub payload: String,

    /// Hand blocks over at this many copies per second of wall-clock time,
    /// as the kernel would, and report latency; without it, as fast as the
    /// pipeline takes them.
    #[arg(long, env = "RINGSIEVE_BENCH_RATE", value_name = "COPIES")]
    pub rate: Option<String>,

    /// The worker: null (does nothing), flows (the flow tracker) or ids
    /// (the flow tracker and the signature engine, with --rules).
    #[arg(long, env = "RINGSIEVE_BENCH_WORKER", value_name = "WORKER", default_value = "null")]
    pub worker: String,

    /// Dedup the copies (true) or hand every copy to the workers (false).
    #[arg(long = "dedup", env = "RINGSIEVE_DEDUP", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub dedup_enabled: String,

    /// The CPU to pin the capture thread to, the first of LIST (the bench
    /// has one capture thread; it also hands the blocks over), as `run
    /// --capture-cpus` pins its capture threads. Unpinned, it can share a
    /// CPU with a worker.
    #[arg(long, env = "RINGSIEVE_CAPTURE_CPUS", value_name = "LIST")]
    pub capture_cpus: Option<String>,

    /// The dedup's options.
    #[command(flatten)]
    pub dedup: DedupArgs,

    /// The pipeline's options.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// The dedup's options, shared by `run` and `read`.
#[derive(Debug, Args)]
pub struct DedupArgs {
    /// Milliseconds of kernel time within which copies of one packet at
    /// different tap points are duplicates, 1 to 10000.
    #[arg(long, env = "RINGSIEVE_DEDUP_WINDOW", value_name = "MS", default_value = "20")]
    pub dedup_window: String,

    /// Entries of the dedup table (64 bytes each), rounded up to a power of
    /// two, 1K to 256M. Keep the packets of two windows under a quarter of
    /// it.
    #[arg(long, env = "RINGSIEVE_DEDUP_TABLE", value_name = "ENTRIES", default_value = "1M")]
    pub dedup_table: String,

    /// Bytes of held copies per capture thread (copies waiting a window for
    /// a better copy) before the oldest are released early, 64K to 16G.
    #[arg(long, env = "RINGSIEVE_HOLD_BUDGET", value_name = "BYTES", default_value = "64M")]
    pub hold_budget: String,

    /// NAT'd connections whose binding (public and container 5-tuples) the
    /// dedup keeps, learned from copies NAT rewrote or from conntrack,
    /// 1K to 64M; when full, the oldest are forgotten and learned again
    /// from their next packets, which costs on every packet of a
    /// connection that was forgotten. Keep it above the NAT'd connections
    /// live at once. Up to about 500 bytes each when in use.
    #[arg(long, env = "RINGSIEVE_NAT_BINDINGS", value_name = "N", default_value = "256K")]
    pub nat_bindings: String,
}

/// The pipeline's options, shared by `run` and `read`: the IDS worker
/// threads, their queues, and what they write.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// IDS worker threads, 1 to 256. Every packet of one connection, both
    /// directions, goes to the same worker.
    #[arg(long, env = "RINGSIEVE_WORKERS", value_name = "N", default_value = "1")]
    pub workers: String,

    /// CPUs to pin worker threads to, in worker order (`1` or `2-3`).
    #[arg(long, env = "RINGSIEVE_WORKER_CPUS", value_name = "LIST")]
    pub worker_cpus: Option<String>,

    /// Packets one worker's queue holds (in batches of 64), 128 to 16M.
    #[arg(long, env = "RINGSIEVE_QUEUE_DEPTH", value_name = "N", default_value = "16384")]
    pub queue_depth: String,

    /// How long a busy worker whose queue ran dry keeps polling it (yielding
    /// the CPU between looks) before it sleeps, in microseconds, 0 to
    /// 1000000. Longer than the block retire timeout, a worker never sleeps
    /// while traffic flows, so it is never late to wake (an idle CPU of a
    /// virtual machine can take milliseconds). Only workers receiving at
    /// least 50 000 packets per second poll; slower ones sleep at once. 0:
    /// never poll, for workers that share CPUs with other threads. `read`'s
    /// workers never poll: offline, nothing waits on them.
    #[arg(
        long,
        env = "RINGSIEVE_WORKER_POLL",
        value_name = "MICROSECONDS",
        default_value = "10000"
    )]
    pub worker_poll: String,

    /// When a worker's queue is full: drop (the newest packets, counted) or
    /// wait (capture falls behind; the kernel drops instead). Default: drop
    /// for run, wait for read.
    #[arg(long, env = "RINGSIEVE_OVERFLOW", value_name = "POLICY")]
    pub overflow: Option<String>,

    /// Append EVE JSON events (flow records, stats) to this file, one JSON
    /// object per line; `-` for stdout.
    #[arg(long, env = "RINGSIEVE_EVE", value_name = "PATH")]
    pub eve: Option<String>,

    /// Seconds between EVE `stats` events, 0 for none, up to 86400.
    #[arg(long, env = "RINGSIEVE_STATS_INTERVAL", value_name = "SECONDS", default_value = "30")]
    pub stats_interval: String,

    /// Flow timeouts in seconds per protocol and state, overriding
    /// Suricata's defaults, e.g. `tcp.established=600,udp.new=30`
    /// (protocols tcp, udp, icmp, other; states new, established, closed).
    #[arg(long, env = "RINGSIEVE_FLOW_TIMEOUTS", value_name = "LIST")]
    pub flow_timeouts: Option<String>,

    /// Flows tracked at once over all workers, 1K to 256M; when full, the
    /// flow idle longest is ended (reason "forced").
    #[arg(long, env = "RINGSIEVE_MAX_FLOWS", value_name = "N", default_value = "1M")]
    pub max_flows: String,

    /// Suricata-format rule files the workers match every packet and
    /// reassembled TCP stream against, writing EVE `alert` events (needs
    /// --eve); repeat for several. The flag takes one path as it is (a
    /// comma is part of it); the variable takes a comma-separated list.
    /// Rules that do not parse are skipped with a warning; a file that
    /// cannot be read is an error. SIGHUP reloads them.
    #[arg(long = "rules", env = "RINGSIEVE_RULES", value_name = "FILE")]
    pub rules: Vec<std::path::PathBuf>,

    /// A rule variable, NAME=VALUE, e.g. HOME_NET=[10.0.0.0/8] or
    /// HTTP_PORTS=[80,8080]; repeat for several (the variable takes a
    /// semicolon-separated list). HOME_NET defaults to the subnets of the
    /// host's bridges (run; recomputed on each SIGHUP reload) or to
    /// Suricata's private ranges (read).
    #[arg(
        long = "var",
        env = "RINGSIEVE_VARS",
        value_name = "NAME=VALUE",
        value_delimiter = ';'
    )]
    pub vars: Vec<String>,

    /// A Suricata classification.config for the rules' classtypes (the
    /// alert's category and default severity); Suricata's own table without
    /// it.
    #[arg(long, env = "RINGSIEVE_CLASSIFICATION_FILE", value_name = "FILE")]
    pub classification_file: Option<std::path::PathBuf>,

    /// Bytes of each direction of a TCP connection reassembled and matched
    /// (Suricata's stream depth), 0 for no limit, up to 1G.
    #[arg(long, env = "RINGSIEVE_STREAM_DEPTH", value_name = "BYTES", default_value = "1M")]
    pub stream_depth: String,

    /// Bytes all workers together may hold for TCP reassembly (out-of-order
    /// segments and the matching window), 1M to 64G; past it, out-of-order
    /// segments are dropped and counted.
    #[arg(long, env = "RINGSIEVE_STREAM_MEMCAP", value_name = "BYTES", default_value = "256M")]
    pub stream_memcap: String,
}

/// Options of `ringsieve read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files to read together, merged by timestamp.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Write the delivered packets to this pcapng file (`-` for stdout),
    /// each with its original interface and direction. Without it, packets
    /// are only counted.
    #[arg(short = 'w', long, env = "RINGSIEVE_PCAP_OUT", value_name = "FILE")]
    pub pcap_out: Option<String>,

    /// The role of an interface, IFNAME=ROLE with ROLE one of veth, bridge,
    /// uplink, other; repeat for several (the variable takes a comma-separated
    /// list). Without it roles come from names: docker0 and br-* are bridges,
    /// veth* container veths, the rest uplinks.
    #[arg(long = "role", env = "RINGSIEVE_ROLE", value_name = "IF=ROLE", value_delimiter = ',')]
    pub roles: Vec<String>,

    /// The order packets are read in: timestamp (merged across files), or
    /// ring (each interface cut into blocks closed after --ring-timeout, read
    /// in the order they close, as live capture reads rings; for testing that
    /// the output does not depend on it).
    #[arg(
        long,
        env = "RINGSIEVE_READ_ORDER",
        value_name = "ORDER",
        default_value = "timestamp"
    )]
    pub read_order: String,

    /// With --read-order ring: the block retire timeout in milliseconds, 1 to
    /// 1000.
    #[arg(long, env = "RINGSIEVE_RING_TIMEOUT", value_name = "MS", default_value = "8")]
    pub ring_timeout: String,

    /// With --read-order ring: shuffles interfaces whose blocks close
    /// together (any whole number).
    #[arg(long, env = "RINGSIEVE_RING_SEED", value_name = "N", default_value = "0")]
    pub ring_seed: String,

    /// The dedup's options.
    #[command(flatten)]
    pub dedup: DedupArgs,

    /// The pipeline's options.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Options of `ringsieve run`. Sizes accept a K, M or G suffix (powers of 1024).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interfaces to capture: names or globs (`veth*`, `br-*`), repeat for
    /// several (the variable takes a comma-separated list). Default: every
    /// interface but loopback, those that appear later too.
    #[arg(
        short = 'i',
        long = "interface",
        env = "RINGSIEVE_INTERFACE",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub interfaces: Vec<String>,

    /// Interfaces not to capture: names or globs, repeat for several.
    #[arg(
        long = "exclude",
        env = "RINGSIEVE_EXCLUDE",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub exclude: Vec<String>,

    /// Write every captured packet to this pcapng file (`-` for stdout).
    /// Without it, packets are only counted.
    #[arg(short = 'w', long, env = "RINGSIEVE_PCAP_OUT", value_name = "FILE")]
    pub pcap_out: Option<String>,

    /// Ring block size in bytes, for every interface: a power of two from 4K
    /// to 64M. Default by interface role: 1M (uplink, bridge, other), 512K
    /// (container veth).
    #[arg(long, env = "RINGSIEVE_BLOCK_SIZE", value_name = "BYTES")]
    pub block_size: Option<String>,

    /// Ring blocks per interface, 2 to 65536. Default by role: 64 (uplink),
    /// 32 (bridge), 16 (container veth, other).
    #[arg(long, env = "RINGSIEVE_BLOCK_COUNT", value_name = "N")]
    pub block_count: Option<String>,

    /// Milliseconds after which the kernel hands over a block that is not
    /// full, 0 to 60000 (0: the kernel picks from the link speed).
    #[arg(long, env = "RINGSIEVE_RETIRE_TIMEOUT", value_name = "MS", default_value = "8")]
    pub retire_timeout: String,

    /// Also capture frames addressed to other hosts, through a socket
    /// membership that ends with the capture (the interface's flags are never
    /// changed). On a Docker bridge this only adds copies: the veths already
    /// show bridged traffic. true or false.
    #[arg(long, env = "RINGSIEVE_PROMISC", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub promisc: String,

    /// Capture threads. With more than one, each interface gets one ring per
    /// thread, joined in a PACKET_FANOUT group.
    #[arg(long, env = "RINGSIEVE_CAPTURE_THREADS", value_name = "N", default_value = "1")]
    pub capture_threads: String,

    /// CPUs to pin capture threads to, in thread order (`0,1` or `0-3`).
    #[arg(long, env = "RINGSIEVE_CAPTURE_CPUS", value_name = "LIST")]
    pub capture_cpus: Option<String>,

    /// Container-veth rings kept prepared per capture thread, 0 to 64, so
    /// that a new container's veth only binds one (preparing a ring can
    /// take 100 ms). Docker creates a veth pair in the host and moves one
    /// end, so each container start takes two: raise it where containers
    /// start in bursts. Each costs a container-veth ring's memory.
    #[arg(long, env = "RINGSIEVE_SPARE_RINGS", value_name = "N", default_value = "2")]
    pub spare_rings: String,

    /// How the kernel spreads an interface over the capture threads: hash
    /// (by flow, both directions together), cpu, lb (round robin) or qm (by
    /// NIC queue).
    #[arg(long, env = "RINGSIEVE_FANOUT", value_name = "MODE", default_value = "hash")]
    pub fanout: String,

    /// Deliver each packet once, by its copy closest to the container,
    /// although the host's interfaces show it two or three times. false
    /// writes every copy (what tcpdump on every interface would).
    #[arg(long = "dedup", env = "RINGSIEVE_DEDUP", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub dedup_enabled: String,

    /// Learn NAT bindings from conntrack events (as well as from the
    /// copies NAT rewrote), so a connection's uplink copies are in its
    /// container's flow from the first packet. true or false.
    #[arg(long, env = "RINGSIEVE_CONNTRACK", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub conntrack: String,

    /// Serve Prometheus metrics at http://ADDR/metrics: PORT or :PORT
    /// (127.0.0.1), HOST:PORT, [IPV6]:PORT. Off by default.
    #[arg(long, env = "RINGSIEVE_METRICS", value_name = "ADDR")]
    pub metrics: Option<String>,

    /// The dedup's options.
    #[command(flatten)]
    pub dedup: DedupArgs,

    /// The pipeline's options.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}
