//! `ringsieve config [run options]`: the effective configuration of
//! `ringsieve run` with the same flags and environment, each setting with
//! its value and where it came from (the flag, the `RINGSIEVE_*`
//! variable, or the default). The settings are validated as `run` would
//! validate them: a bad value exits with code 2, naming the flag or
//! variable, the value and what is accepted.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use serde_json::json;

use crate::settings::RunSettings;

/// Prints one line per option of `run` (a JSON object with `--json`).
pub fn show(matches: &ArgMatches, _settings: &RunSettings, as_json: bool) -> anyhow::Result<ExitCode> {
    let command = crate::cli::Cli::command();
    let run = command.find_subcommand("config").expect("the config subcommand exists");
    let mut rows = Vec::new();
    for arg in run.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "json" || id == "help" || id == "version" {
            continue;
        }
        let flag = arg
            .get_long()
            .map(|l| format!("--{l}"))
            .unwrap_or_else(|| id.to_owned());
        let variable = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => flag.clone(),
            Some(ValueSource::EnvVariable) => variable.clone().unwrap_or_else(|| "environment".to_owned()),
            Some(ValueSource::DefaultValue) => "default".to_owned(),
            _ => "unset".to_owned(),
        };
        rows.push((flag, values.join(","), source, variable));
    }
    if as_json {
        let object: serde_json::Map<String, serde_json::Value> = rows
            .into_iter()
            .map(|(flag, value, source, variable)| {
                (
                    flag.trim_start_matches("--").to_owned(),
                    json!({ "value": value, "source": source, "variable": variable }),
                )
            })
            .collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        println!("{:<20} {:<28} {:<26} VARIABLE", "OPTION", "VALUE", "FROM");
        for (flag, value, source, variable) in rows {
            let value = if value.is_empty() { "-".to_owned() } else { value };
            println!("{flag:<20} {value:<28} {source:<26} {}", variable.unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}
