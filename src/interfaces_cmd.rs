//! `ringsieve interfaces [--json]`: this namespace's interfaces as
//! discovery sees them (role, container, ring size, promiscuity) and
//! whether `ringsieve run` with the same options would capture each.

use std::process::ExitCode;
use std::sync::Arc;

use pipeline::host_book::HostBook;
use serde_json::json;

use crate::host::{ring_config, ring_role, Host};
use crate::settings::RunSettings;

/// Prints the listing; `json` for one JSON array.
pub fn list(settings: &RunSettings, json: bool) -> anyhow::Result<ExitCode> {
    let mut host = Host::open(settings.selection.clone(), Arc::new(HostBook::default()))
        .map_err(|e| anyhow::anyhow!("reading the interfaces (rtnetlink): {e}"))?;
    let rows: Vec<serde_json::Value> = host
        .listing()
        .into_iter()
        .map(|(link, role, selected, container)| {
            let config = ring_config(role, &settings.geometry, settings.promiscuous);
            json!({
                "name": link.name,
                "ifindex": link.ifindex,
                "kind": link.kind,
                "role": ring_role(role).as_str(),
                "container": container.as_ref().and_then(|c| c.display()),
                "container_id": container.as_ref().and_then(|c| c.id.clone()),
                "ring_bytes": config.geometry.memory_bytes(),
                "ring": config.geometry.to_string(),
                "promiscuous": config.promiscuous,
                "captured": selected,
                "up": link.admin_up,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:>7} {:<15} {:<10} {:<14} {:>9} {:<5}",
        "INTERFACE", "IFINDEX", "ROLE", "CAPTURED", "CONTAINER", "RING MiB", "PROMISC"
    );
    for row in rows {
        println!(
            "{:<16} {:>7} {:<15} {:<10} {:<14} {:>9} {:<5}",
            row["name"].as_str().unwrap_or_default(),
            row["ifindex"],
            row["role"].as_str().unwrap_or_default(),
            if row["captured"] == true { "yes" } else { "no" },
            row["container"].as_str().unwrap_or("-"),
            row["ring_bytes"].as_u64().unwrap_or(0) >> 20,
            if row["promiscuous"] == true { "yes" } else { "no" },
        );
    }
    Ok(ExitCode::SUCCESS)
}
