//! `ringsieve-blast`: the test bed's packet blaster. Sends pre-built
//! Ethernet/IPv4/UDP frames ([`testbed::FrameSpec`]) on one interface at a
//! fixed rate or as fast as the kernel takes them, for a fixed count or
//! duration, then prints one JSON line `{"sent": N, "seconds": S, "pps": R}`.
//!
//! It runs in the namespace of its interface (`ip netns exec NS
//! ringsieve-blast ...`), batches through [`FrameSender::send`] (`sendmmsg`)
//! and paces with a token bucket against the monotonic clock, sleeping when it
//! is ahead. Frames are built once before the clock starts; the send loop does
//! not allocate. It is a load generator, not a traffic model: frames cycle
//! through the pool, so sequence numbers repeat once the pool wraps.

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use af_packet::{FrameSender, Interface};
use anyhow::{bail, Context};
use clap::{ArgGroup, Parser};
use testbed::FrameSpec;

/// Frames per `sendmmsg` and the token bucket's burst, unless `--batch` says otherwise.
const DEFAULT_BATCH: usize = 64;
/// Most flows: the pool holds one frame per flow and size, and stays bounded.
const MAX_FLOWS: u32 = 16_384;
/// The sizes `--size mixed` cycles through: minimum, odd sizes, the MTU edge.
const MIXED_SIZES: [usize; 8] = [60, 64, 127, 128, 511, 1000, 1513, 1514];

/// Sends UDP test frames on one interface at a fixed rate.
#[derive(Debug, Parser)]
#[command(name = "ringsieve-blast", version, about)]
#[command(group(ArgGroup::new("bound").required(true).args(["count", "duration"])))]
struct Args {
    /// Interface to send on (in the current network namespace).
    #[arg(long, short = 'i', env = "RINGSIEVE_BLAST_INTERFACE")]
    interface: String,
    /// Packets per second, or `max` for no pacing.
    #[arg(long, default_value = "max")]
    rate: Rate,
    /// Stop after this many frames.
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// Frame length in bytes without FCS (60..=9014), or `mixed` to cycle
    /// through 60, 64, 127, 128, 511, 1000, 1513 and 1514.
    #[arg(long, short = 's', default_value = "60")]
    size: FrameSize,
    /// Number of flows: source ports 40000, 40001, ... cycled frame by frame.
    #[arg(long, short = 'f', default_value_t = NonZeroU32::MIN)]
    flows: NonZeroU32,
    /// Frames per sendmmsg call (also the pacing burst).
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Send straight to the driver, skipping the qdisc (PACKET_QDISC_BYPASS).
    #[arg(long)]
    qdisc_bypass: bool,
}

/// The offered rate.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rate {
    /// No pacing: as fast as `sendmmsg` returns.
    Max,
    /// Packets per second.
    PerSecond(f64),
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Self::Max);
        }
        match s.parse::<f64>() {
            Ok(pps) if pps.is_finite() && pps >= 1.0 => Ok(Self::PerSecond(pps)),
            _ => Err(format!(
                "`{s}` is neither `max` nor a rate of at least 1 packet per second"
            )),
        }
    }
}

/// The frame length choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameSize {
    /// Every frame this long.
    Fixed(usize),
    /// Cycle through [`MIXED_SIZES`].
    Mixed,
}

impl FromStr for FrameSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("mixed") {
            return Ok(Self::Mixed);
        }
        match s.parse::<usize>() {
            Ok(len) if (testbed::MIN_FRAME_LEN..=9014).contains(&len) => Ok(Self::Fixed(len)),
            _ => Err(format!(
                "`{s}` is neither `mixed` nor a frame length in {}..=9014",
                testbed::MIN_FRAME_LEN
            )),
        }
    }
}

/// When to stop.
#[derive(Clone, Copy, Debug)]
enum Bound {
    Count(u64),
    Until(Duration),
}

/// The validated plan: everything checked before any socket is opened.
#[derive(Debug)]
struct Plan {
    interface: String,
    rate: Rate,
    bound: Bound,
    batch: usize,
    qdisc_bypass: bool,
    pool: Vec<Vec<u8>>,
}

impl Plan {
    fn from_args(args: Args) -> anyhow::Result<Self> {
        let bound = match (args.count, args.duration) {
            (Some(n), None) => Bound::Count(n),
            (None, Some(secs)) if secs.is_finite() && secs > 0.0 => Bound::Until(Duration::from_secs_f64(secs)),
            (None, Some(secs)) => bail!("--duration must be a positive number of seconds, not {secs}"),
            _ => bail!("give exactly one of --count and --duration"),
        };
        if args.batch == 0 || args.batch > 1024 {
            bail!("--batch must be in 1..=1024, not {}", args.batch);
        }
        if args.flows.get() > MAX_FLOWS {
            bail!("--flows must be at most {MAX_FLOWS}, not {}", args.flows);
        }
        Ok(Self {
            interface: args.interface,
            rate: args.rate,
            bound,
            batch: args.batch,
            qdisc_bypass: args.qdisc_bypass,
            pool: frame_pool(args.size, args.flows.get()),
        })
    }
}

/// One frame per (flow, size) pair, ordered so that consecutive frames change
/// both flow and size: frame `i` has flow `i % flows` and size
/// `sizes[i % sizes.len()]`, over `lcm(flows, sizes)` frames.
fn frame_pool(size: FrameSize, flows: u32) -> Vec<Vec<u8>> {
    let sizes: &[usize] = match size {
        FrameSize::Fixed(ref len) => std::slice::from_ref(len),
        FrameSize::Mixed => &MIXED_SIZES,
    };
    let flows = flows as usize;
    let len = lcm(flows, sizes.len());
    (0..len)
        .map(|i| {
            FrameSpec {
                src_port: 40_000u16.wrapping_add((i % flows) as u16),
                frame_len: sizes[i % sizes.len()],
                ..FrameSpec::default()
            }
            .build(i as u32)
        })
        .collect()
}

fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// A token bucket: `rate` tokens per second, at most `capacity` saved up.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new(rate: f64, capacity: f64, now: Instant) -> Self {
        Self {
            rate,
            capacity,
            tokens: 0.0,
            refilled_at: now,
        }
    }

    /// How many of `wanted` frames may go now (at least one, or zero with the
    /// time to wait for `wanted`).
    fn take(&mut self, wanted: usize, now: Instant) -> Result<usize, Duration> {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            let n = (self.tokens as usize).min(wanted);
            self.tokens -= n as f64;
            Ok(n)
        } else {
            Err(Duration::from_secs_f64((wanted as f64 - self.tokens) / self.rate))
        }
    }
}

/// What a run did.
#[derive(Debug)]
struct Report {
    sent: u64,
    seconds: f64,
}

fn blast(plan: &Plan, sender: &FrameSender) -> anyhow::Result<Report> {
    // The pool twice over, as borrowed slices, so that the `batch` frames from
    // any position are one contiguous slice: no allocation in the loop.
    let pool_len = plan.pool.len();
    let refs: Vec<&[u8]> = plan
        .pool
        .iter()
        .cycle()
        .take(pool_len + plan.batch)
        .map(Vec::as_slice)
        .collect();
    let start = Instant::now();
    let mut bucket = match plan.rate {
        Rate::Max => None,
        // Ten milliseconds of traffic (at least two batches) absorb the
        // oversleeping of a noisy machine without bursting for long.
        Rate::PerSecond(pps) => Some(TokenBucket::new(pps, (pps / 100.0).max(2.0 * plan.batch as f64), start)),
    };
    let mut sent = 0u64;
    let mut position = 0usize;
    let mut now = start;
    loop {
        let wanted = match plan.bound {
            Bound::Count(total) if sent >= total => break,
            Bound::Count(total) => plan.batch.min((total - sent) as usize),
            Bound::Until(duration) if now.duration_since(start) >= duration => break,
            Bound::Until(_) => plan.batch,
        };
        let n = match bucket.as_mut().map(|b| b.take(wanted, now)) {
            None => wanted,
            Some(Ok(n)) => n,
            Some(Err(wait)) => {
                let wait = match plan.bound {
                    Bound::Until(duration) => wait.min(duration.saturating_sub(now.duration_since(start))),
                    Bound::Count(_) => wait,
                };
                std::thread::sleep(wait);
                now = Instant::now();
                continue;
            }
        };
        let accepted = sender
            .send(&refs[position..position + n])
            .with_context(|| format!("sending on {}", plan.interface))?;
        if accepted == 0 {
            bail!("the kernel accepted none of {n} frames on {}", plan.interface);
        }
        sent += accepted as u64;
        position = (position + accepted) % pool_len;
        now = Instant::now();
    }
    Ok(Report {
        sent,
        seconds: now.duration_since(start).as_secs_f64(),
    })
}

/// Exit code of a bad setting (as clap's own usage errors); 1 is a failure while sending.
const EXIT_BAD_SETTING: u8 = 2;

fn run(plan: &Plan) -> anyhow::Result<()> {
    let interface = Interface::by_name(&plan.interface)?;
    let sender = FrameSender::open(&interface).context("opening the packet socket")?;
    if plan.qdisc_bypass {
        sender.bypass_qdisc().context("bypassing the qdisc")?;
    }
    let report = blast(plan, &sender)?;
    let pps = if report.seconds > 0.0 {
        report.sent as f64 / report.seconds
    } else {
        0.0
    };
    println!(
        "{{\"sent\": {}, \"seconds\": {:.6}, \"pps\": {:.1}}}",
        report.sent, report.seconds, pps
    );
    Ok(())
}

fn main() -> ExitCode {
    let plan = match Plan::from_args(Args::parse()) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("ringsieve-blast: {error:#}");
            return ExitCode::from(EXIT_BAD_SETTING);
        }
    };
    match run(&plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringsieve-blast: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_size_parse_their_keywords_and_numbers() {
        assert_eq!("max".parse(), Ok(Rate::Max));
        assert_eq!("100000".parse(), Ok(Rate::PerSecond(100_000.0)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert_eq!("mixed".parse(), Ok(FrameSize::Mixed));
        assert_eq!("1514".parse(), Ok(FrameSize::Fixed(1514)));
        assert!("10".parse::<FrameSize>().is_err());
    }

    #[test]
    fn pool_cycles_flows_and_sizes_together() {
        let pool = frame_pool(FrameSize::Mixed, 3);
        assert_eq!(pool.len(), 24);
        for (i, frame) in pool.iter().enumerate() {
            assert_eq!(frame.len(), MIXED_SIZES[i % 8]);
            let src_port = u16::from_be_bytes([frame[34], frame[35]]);
            assert_eq!(src_port, 40_000 + (i % 3) as u16);
        }
        assert_eq!(frame_pool(FrameSize::Fixed(1514), 1).len(), 1);
    }

    #[test]
    fn token_bucket_paces_and_caps_savings() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000.0, 100.0, t0);
        // Nothing saved at the start: wait for 64 tokens at 1000/s.
        let wait = bucket.take(64, t0).unwrap_err();
        assert!(wait.abs_diff(Duration::from_millis(64)) < Duration::from_micros(1));
        assert_eq!(bucket.take(64, t0 + Duration::from_millis(64)), Ok(64));
        // A long sleep saves at most the capacity.
        assert_eq!(bucket.take(1000, t0 + Duration::from_secs(10)), Ok(100));
    }
}
