//! `ringsieve-fixture-manifest`: writes the JSON manifest of one recorded
//! dedup fixture (`tests/fixtures/dedup/<case>.json`) for
//! `scripts/record-fixtures.sh`. From the captures it has just recorded it
//! computes the expected delivered count (the container-side captures only,
//! `testbed::fixtures::expected_delivered`) and the host capture's packet
//! counts in all and per interface; from `ip -j link` in the bed's host
//! namespace it takes each ifindex's name and role. It refuses to write a
//! manifest that could not serve as a dedup fixture: a host interface with no
//! name, or a host capture with no more packets than are to be delivered.
//! It prints one summary line. Manifests are never written by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{ensure, Context};
use clap::Parser;
use testbed::fixtures::{expected_delivered, host_counts, host_interfaces, Fixture};

/// Writes the manifest of one recorded dedup fixture.
#[derive(Debug, Parser)]
#[command(name = "ringsieve-fixture-manifest", version, about)]
struct Args {
    /// Directory of the captures, where `<case>.json` is written.
    #[arg(long)]
    dir: PathBuf,
    /// The fixture's name.
    #[arg(long)]
    case: String,
    /// The `scripts/traffic.sh` case that made the traffic.
    #[arg(long)]
    traffic: String,
    /// The BPF filter both sides were recorded with.
    #[arg(long)]
    filter: String,
    /// The host capture (`-i any -y LINUX_SLL2`), a file name in `--dir`.
    #[arg(long)]
    host_capture: String,
    /// A container's `eth0` capture, a file name in `--dir`; once per
    /// container taking part.
    #[arg(long = "container-capture", required = true)]
    container_captures: Vec<String>,
    /// `ip -j link` of the bed's host namespace, saved while recording.
    #[arg(long)]
    links: PathBuf,
    /// docker0 was promiscuous.
    #[arg(long)]
    docker0_promisc: bool,
    /// TSO and GSO were off on the uplink.
    #[arg(long)]
    tso_off: bool,
    /// Kernel release; default: the running kernel's.
    #[arg(long)]
    kernel: Option<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringsieve-fixture-manifest: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let links = std::fs::read_to_string(&args.links).with_context(|| format!("reading {}", args.links.display()))?;
    let (roles, names) = host_interfaces(&links).map_err(anyhow::Error::msg)?;
    let host_capture = args.dir.join(&args.host_capture);
    let container_captures: Vec<PathBuf> = args.container_captures.iter().map(|name| args.dir.join(name)).collect();
    let expected = expected_delivered(&container_captures).map_err(anyhow::Error::msg)?;
    let (host_copies, host_per_interface) = host_counts(&host_capture).map_err(anyhow::Error::msg)?;
    let kernel = match args.kernel {
        Some(kernel) => kernel,
        None => std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .context("reading the kernel release")?
            .trim()
            .to_owned(),
    };
    let fixture = Fixture {
        manifest: args.dir.join(format!("{}.json", args.case)),
        case: args.case,
        dir: args.dir,
        host_capture,
        container_captures,
        roles,
        names,
        docker0_promisc: args.docker0_promisc,
        tso_off: args.tso_off,
        expected_delivered: expected,
        host_copies,
        host_per_interface,
        filter: args.filter,
        traffic: args.traffic,
        kernel,
    };
    for (interface, _) in &fixture.host_per_interface {
        ensure!(
            fixture.name(interface).is_some(),
            "{}: the host capture has packets on {interface}, which `ip -j link` does not list",
            fixture.case
        );
    }
    ensure!(expected > 0, "{}: the container captures hold no packet", fixture.case);
    ensure!(
        host_copies > expected,
        "{}: the host capture has {host_copies} packets, not more than the {expected} to deliver: no duplicates",
        fixture.case
    );
    let text = serde_json::to_string_pretty(&fixture.to_json())? + "\n";
    std::fs::write(&fixture.manifest, text).with_context(|| format!("writing {}", fixture.manifest.display()))?;
    let per_interface: Vec<String> = fixture
        .host_per_interface
        .iter()
        .map(|(interface, count)| format!("{}={count}", fixture.name(interface).unwrap_or(interface)))
        .collect();
    println!(
        "{}: host copies {host_copies}, expected delivered {expected}, per interface {}",
        fixture.case,
        per_interface.join(" ")
    );
    Ok(())
}
