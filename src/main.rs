//! The `ringsieve` binary: parses the command line and environment, runs the
//! chosen command, and maps failures to exit codes (2 for a bad setting or
//! usage, 1 for a runtime failure).

mod accounting;
mod addresses;
mod attribution;
mod bench;
mod cli;
mod config_cmd;
mod dedup_summary;
mod detection;
mod host;
mod host_worker;
mod interfaces_cmd;
mod live_flows;
mod metrics;
mod nat_feed;
mod pcap_worker;
mod read;
mod run;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::settings::{BenchSettings, Origin, ReadSettings, RunSettings, SettingError};

/// Exit code for a bad setting or usage error.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage
            // errors to stderr; both exit through here.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.command {
        Command::Run(args) => {
            let sub = matches
                .subcommand_matches("run")
                .expect("clap matched the run subcommand");
            let origin = Origin::new("run", sub);
            let result = RunSettings::from_args(&args, &origin)
                .map_err(anyhow::Error::from)
                .and_then(|settings| run::run(&settings, &origin));
            finish(result)
        }
        Command::Read(args) => {
            let sub = matches
                .subcommand_matches("read")
                .expect("clap matched the read subcommand");
            let origin = Origin::new("read", sub);
            let result = ReadSettings::from_args(&args, &origin)
                .map_err(anyhow::Error::from)
                .and_then(|settings| read::read(&settings));
            finish(result)
        }
        Command::Config(args) => {
            let sub = matches
                .subcommand_matches("config")
                .expect("clap matched the config subcommand");
            let origin = Origin::new("config", sub);
            let result = RunSettings::from_args(&args.run, &origin)
                .map_err(anyhow::Error::from)
                .and_then(|settings| config_cmd::show(sub, &settings, args.json));
            finish(result)
        }
        Command::Interfaces(args) => {
            let sub = matches
                .subcommand_matches("interfaces")
                .expect("clap matched the interfaces subcommand");
            let origin = Origin::new("interfaces", sub);
            let result = RunSettings::from_args(&args.run, &origin)
                .map_err(anyhow::Error::from)
                .and_then(|settings| interfaces_cmd::list(&settings, args.json));
            finish(result)
        }
        Command::Bench(args) => {
            let sub = matches
                .subcommand_matches("bench")
                .expect("clap matched the bench subcommand");
            let origin = Origin::new("bench", sub);
            let result = BenchSettings::from_args(&args, &origin)
                .map_err(anyhow::Error::from)
                .and_then(|settings| bench::bench(&settings));
            finish(result)
        }
    }
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<SettingError>().is_some() => {
            eprintln!("ringsieve: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("ringsieve: {e:#}");
            ExitCode::FAILURE
        }
    }
}
