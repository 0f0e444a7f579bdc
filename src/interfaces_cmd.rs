//! `ringsieve interfaces [--json]`: this namespace's interfaces as
//! discovery sees them (role, container, ring size, promiscuity) and
//! whether `ringsieve run` with the same options would capture each.
//!
//! Promiscuity is the kernel's, from the rtnetlink dump (`IFF_PROMISC` or
//! a nonzero `IFLA_PROMISCUITY`: a bridge's ports are promiscuous), shown
//! beside whether `run` would make the interface promiscuous
//! (`--promisc`, for an interface it captures). The ring is the
//! one `run` would open: a veth not (yet) enslaved is sized as a container
//! veth, as `run` sizes it.

use std::process::ExitCode;
use std::sync::Arc;

use pipeline::host_book::HostBook;
use serde_json::json;

use crate::host::{ring_config, ring_role, sized_as, Host};
use crate::settings::RunSettings;

/// Prints the listing; `json` for one JSON array.
pub fn list(settings: &RunSettings, json: bool) -> anyhow::Result<ExitCode> {
    let mut host = Host::open(settings.selection.clone(), Arc::new(HostBook::default()))
        .map_err(|e| anyhow::anyhow!("reading the interfaces (rtnetlink): {e}"))?;
    let rows: Vec<serde_json::Value> = host
        .listing()
        .into_iter()
        .map(|(link, role, selected, container)| {
            let config = ring_config(sized_as(role, link.is_veth()), &settings.geometry, settings.promiscuous);
            json!({
                "name": link.name,
                "ifindex": link.ifindex,
                "kind": link.kind,
                "role": ring_role(role).as_str(),
                "container": container.as_ref().and_then(|c| c.display()),
                "container_id": container.as_ref().and_then(|c| c.id.clone()),
                "container_netns": container.as_ref().and_then(|c| c.netns.clone()),
                "ring_bytes": config.geometry.memory_bytes(),
                "ring": config.geometry.to_string(),
                "promiscuous": link.in_promiscuous_mode(),
                "promiscuity": link.promiscuity,
                "sets_promiscuous": selected && config.promiscuous,
                "captured": selected,
                "up": link.admin_up,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    let yes = |value: &serde_json::Value| if *value == true { "yes" } else { "no" };
    println!(
        "{:<16} {:>7} {:<15} {:<10} {:<14} {:>9} {:<7} {:<8}",
        "INTERFACE", "IFINDEX", "ROLE", "CAPTURED", "CONTAINER", "RING MiB", "PROMISC", "SETS PROMISC"
    );
    for row in rows {
        println!(
            "{:<16} {:>7} {:<15} {:<10} {:<14} {:>9} {:<7} {:<8}",
            row["name"].as_str().unwrap_or_default(),
            row["ifindex"],
            row["role"].as_str().unwrap_or_default(),
            yes(&row["captured"]),
            row["container"].as_str().unwrap_or("-"),
            row["ring_bytes"].as_u64().unwrap_or(0) >> 20,
            yes(&row["promiscuous"]),
            yes(&row["sets_promiscuous"]),
        );
    }
    Ok(ExitCode::SUCCESS)
}
