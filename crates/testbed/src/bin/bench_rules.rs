//! `ringsieve-bench-rules`: writes `N` Suricata content rules that match a
//! known small fraction of the HTTP-like synthetic traffic
//! (`ringsieve bench --payload http`), for `scripts/bench-ids.sh`. The rules
//! and the tokens in the traffic come from one place,
//! [`testbed::http_payload`]; with `N` rules, one message in
//! `20 * 10000 / N` matches one rule.
//!
//! ```text
//! ringsieve-bench-rules 1000 > bench-1000.rules
//! ```

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use testbed::http_payload::{rules, RULE_TOKENS};

/// Writes N benchmark content rules to stdout.
#[derive(Debug, Parser)]
#[command(name = "ringsieve-bench-rules", version, about)]
struct Args {
    /// Rules to write, 0 to 10000.
    #[arg(value_parser = clap::value_parser!(u32).range(0..=i64::from(RULE_TOKENS)))]
    count: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match std::io::stdout().lock().write_all(rules(args.count).as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringsieve-bench-rules: {error}");
            ExitCode::FAILURE
        }
    }
}
