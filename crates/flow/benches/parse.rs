//! Cost of [`flow::parse_frame`] per packet, on the frames that matter for a
//! capture: a 64-byte TCP ACK (the packet-rate worst case), a 1514-byte TCP
//! segment (the MTU case: parsing reads headers only, so it should cost the
//! same), and a VXLAN frame with an inner TCP segment (outer parse alone, and
//! outer plus inner as a capture of an overlay network does). It measures the
//! parse only: no ring, no copy, no identity hashing.
//!
//! Wall time: `cargo bench -p flow --bench parse`. Each iteration parses one
//! frame (`Throughput::Elements(1)`), so criterion reports packets per
//! second and the time is nanoseconds per packet.
//!
//! With `RINGSIEVE_BENCH_ONCE=<frame>` (`tcp-ack-64`, `tcp-1514`, `vxlan-tcp`,
//! `vxlan-tcp-inner`; 1 for all) the binary skips criterion and runs
//! [`ONCE_PARSES`] parses of the frame in [`parse_batch`], for instruction
//! counts under callgrind:
//!
//! ```text
//! RINGSIEVE_BENCH_ONCE=tcp-ack-64 valgrind --tool=callgrind \
//!     --toggle-collect='*parse_batch*' target/release/deps/parse-<hash>
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flow::fuzzing::seeds;
use flow::{parse_frame, ParseError};

/// Parses in one `RINGSIEVE_BENCH_ONCE` run per frame.
const ONCE_PARSES: u64 = 1_000_000;

/// The frames measured, by name, and whether to parse the VXLAN inner frame
/// too.
fn frames() -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        ("tcp-ack-64", seeds::TCP_ACK_64.to_vec(), false),
        ("tcp-1514", seeds::tcp_segment(1460), false),
        ("vxlan-tcp", seeds::VXLAN_TCP.to_vec(), false),
        ("vxlan-tcp-inner", seeds::VXLAN_TCP.to_vec(), true),
    ]
}

/// Parses `frame` (and its VXLAN inner frame when `inner`), returning the
/// transport payload length so that nothing is optimised away.
#[inline(always)]
fn parse_one(frame: &[u8], inner: bool) -> Result<usize, ParseError> {
    let parsed = parse_frame(frame, None)?;
    let mut len = parsed.transport.map_or(0, |t| t.payload().len());
    if inner {
        if let Some(vxlan) = parsed.vxlan_inner {
            let parsed = parse_frame(vxlan.frame, None)?;
            len += parsed.transport.map_or(0, |t| t.payload().len());
        }
    }
    Ok(len)
}

/// Parses `frame` `count` times. Not inlined, so that callgrind can count its
/// instructions alone.
#[inline(never)]
fn parse_batch(frame: &[u8], inner: bool, count: u64) -> usize {
    let mut total = 0;
    for _ in 0..count {
        total += black_box(parse_one(black_box(frame), inner)).unwrap_or(0);
    }
    total
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_frame");
    group.throughput(Throughput::Elements(1));
    for (name, frame, inner) in frames() {
        assert!(parse_one(&frame, inner).is_ok(), "{name} parses");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| parse_one(black_box(&frame), inner))
        });
    }
    group.finish();
}

/// The fixed run for callgrind: [`ONCE_PARSES`] parses of the named frame,
/// or of each in turn (`setting` is 1).
fn run_once(setting: &str) -> Result<(), String> {
    let frames = frames();
    let chosen: Vec<_> = frames
        .iter()
        .filter(|(name, _, _)| setting == "1" || setting == *name)
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = frames.iter().map(|(name, _, _)| *name).collect();
        return Err(format!(
            "RINGSIEVE_BENCH_ONCE={setting}: expected 1 (all) or one of {names:?}"
        ));
    }
    for (name, frame, inner) in chosen {
        let payload_bytes = parse_batch(frame, *inner, ONCE_PARSES);
        println!("{{\"frame\": \"{name}\", \"frame_len\": {}, \"packets\": {ONCE_PARSES}, \"payload_bytes\": {payload_bytes}}}", frame.len());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    if let Ok(setting) = std::env::var("RINGSIEVE_BENCH_ONCE") {
        return match run_once(&setting) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("parse: {message}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut criterion = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    parse(&mut criterion);
    criterion.final_summary();
    std::process::ExitCode::SUCCESS
}
