//! The signature engine as `run`, `read` and `bench` set it up: the rule
//! variables (HOME_NET from the host's bridge subnets or a default, then
//! the `--var` overrides), loading the rule files with a warning per
//! skipped rule and the counts at start, one stream memory account shared
//! by all workers, a [`SignatureInspector`] per worker, and the reload a
//! SIGHUP asks for. A reload of `run` recomputes HOME_NET from the
//! bridges' subnets at that time (a Docker network created since the start
//! is in it), unless `--var` sets HOME_NET.

use std::sync::Arc;

use ids::{RuleSource, RuleSpec, SignatureInspector, SourceError};
use rules::{DetectorConfig, StreamConfig, StreamMemory, Vars};

use crate::settings::{DetectionSettings, SettingError};

/// The loaded rules and what every worker's detection shares.
#[derive(Debug, Clone)]
pub struct Detection {
    source: Arc<RuleSource>,
    /// The `--var` overrides, applied again on a reload with a new
    /// HOME_NET.
    var_overrides: Vec<String>,
    memory: Arc<StreamMemory>,
    config: DetectorConfig,
}

impl Detection {
    /// Loads the rules of `settings` with HOME_NET set to `home_nets` (the
    /// default, private ranges, when empty) before the `--var` overrides.
    /// An unreadable file is a [`SettingError`] naming it (exit 2).
    pub fn load(settings: &DetectionSettings, home_nets: &[String]) -> anyhow::Result<Detection> {
        let vars = rule_vars(home_nets, &settings.vars)?;
        let home_net = vars.get("HOME_NET").unwrap_or_default().to_owned();
        let spec = RuleSpec {
            files: settings.rules.clone(),
            vars,
            classification: settings.classification.as_ref().map(|(path, _)| path.clone()),
        };
        let (source, report) = RuleSource::load(spec).map_err(|error| setting_error(settings, error))?;
        for warning in &report.warnings {
            tracing::warn!("rule skipped: {warning}");
        }
        tracing::info!(
            loaded = report.loaded,
            skipped = report.skipped,
            home_net = %home_net,
            "{}",
            ids::describe_load(&report, source.files())
        );
        let config = DetectorConfig {
            stream: StreamConfig {
                depth: settings.stream_depth,
                ..StreamConfig::default()
            },
            stream_memcap: settings.stream_memcap,
            ..DetectorConfig::default()
        };
        Ok(Detection {
            source,
            var_overrides: settings.vars.clone(),
            memory: StreamMemory::new(settings.stream_memcap),
            config,
        })
    }

    /// A worker's detection.
    pub fn inspector(&self) -> SignatureInspector {
        SignatureInspector::new(Arc::clone(&self.source), self.config, Arc::clone(&self.memory))
    }

    /// Loads the rule files again (on SIGHUP), logging the outcome; the
    /// rules in use stay when it fails. The workers take the new rules at
    /// their next batch. With `home_nets` (the bridges' subnets now),
    /// HOME_NET is recomputed from them, unless a `--var` sets it; without,
    /// the variables in use stay.
    pub fn reload(&self, home_nets: Option<&[String]>) {
        let outcome = match home_nets {
            // The overrides are applied after HOME_NET: a `--var HOME_NET`
            // still wins.
            Some(nets) => rule_vars(nets, &self.var_overrides)
                .map_err(|error| error.to_string())
                .and_then(|vars| self.source.reload_with_vars(vars).map_err(|error| error.to_string())),
            _ => self.source.reload().map_err(|error| error.to_string()),
        };
        match outcome {
            Ok(report) => {
                for warning in &report.warnings {
                    tracing::warn!("rule skipped: {warning}");
                }
                let home_net = self.source.vars().get("HOME_NET").unwrap_or_default().to_owned();
                tracing::info!(
                    loaded = report.loaded,
                    skipped = report.skipped,
                    home_net = %home_net,
                    "rules reloaded: {}",
                    ids::describe_load(&report, self.source.files())
                );
            }
            Err(error) => tracing::error!(%error, "rule reload failed; the rules in use stay"),
        }
    }

    /// The shared figures for the exit summary: rules in use, reloads,
    /// stream memory.
    pub fn summary_json(&self) -> serde_json::Value {
        let (generation, rules) = self.source.current();
        serde_json::json!({
            "rules": rules.len(),
            "generation": generation,
            "reloads": self.source.reloads(),
            "failed_reloads": self.source.failed_reloads(),
            "stream_memory": {
                "cap": self.memory.cap(),
                "used": self.memory.used(),
                "peak": self.memory.peak(),
                "dropped_segments": self.memory.dropped_segments(),
                "dropped_bytes": self.memory.dropped_bytes(),
            },
        })
    }
}

/// The rule variables: HOME_NET from `home_nets` (Suricata's private
/// ranges when empty), then the `--var` overrides (checked when the
/// settings were validated).
fn rule_vars(home_nets: &[String], overrides: &[String]) -> anyhow::Result<Vars> {
    let mut vars = Vars::with_home_net(home_nets);
    for spec in overrides {
        vars.apply_override(spec).map_err(anyhow::Error::msg)?;
    }
    Ok(vars)
}

/// An unreadable rule or classification file, as the setting that named
/// it.
fn setting_error(settings: &DetectionSettings, error: SourceError) -> anyhow::Error {
    match error {
        SourceError::Rules(load) => SettingError {
            source: settings.rules_origin.clone(),
            value: load.path.display().to_string(),
            expected: format!("a readable rule file ({})", load.source),
        }
        .into(),
        SourceError::Classification { path, message } => SettingError {
            source: settings
                .classification
                .as_ref()
                .map_or_else(|| "--classification-file".to_owned(), |(_, origin)| origin.clone()),
            value: path.display().to_string(),
            expected: format!("a readable classification file ({message})"),
        }
        .into(),
        other => anyhow::Error::new(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules::{Detector, FlowState, Packet, Protocol};

    /// Whether the rules in use alert on a UDP datagram to `dst`.
    fn alerts_to(detection: &Detection, dst: &str) -> bool {
        let (_, rules) = detection.source.current();
        let mut flow = FlowState::new();
        let mut pkt = Packet::new(
            Protocol::Udp,
            "198.18.0.1".parse().unwrap(),
            dst.parse().unwrap(),
            b"x",
            &mut flow,
        );
        pkt.dst_port = 53;
        !rules.match_packet(&mut Detector::default(), &mut pkt).alerts.is_empty()
    }

    fn settings(rules: &std::path::Path, vars: &[&str]) -> DetectionSettings {
        DetectionSettings {
            rules: vec![rules.to_path_buf()],
            rules_origin: "--rules".to_owned(),
            vars: vars.iter().map(|v| v.to_string()).collect(),
            classification: None,
            stream_depth: 1 << 20,
            stream_memcap: 1 << 20,
        }
    }

    #[test]
    fn a_reload_recomputes_home_net_from_the_bridges_unless_a_var_sets_it() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("home.rules");
        std::fs::write(&rules, "alert udp any any -> $HOME_NET any (msg:\"in\"; sid:1;)\n").unwrap();
        let at_start = ["172.17.0.0/16".to_owned()];
        // A Docker network created after the start.
        let now = ["172.17.0.0/16".to_owned(), "172.20.0.0/16".to_owned()];

        let detection = Detection::load(&settings(&rules, &["HTTP_PORTS=[80,8080]"]), &at_start).unwrap();
        assert!(alerts_to(&detection, "172.17.0.2"));
        assert!(!alerts_to(&detection, "172.20.0.2"));
        detection.reload(None);
        assert!(
            !alerts_to(&detection, "172.20.0.2"),
            "no new subnets given: HOME_NET stays"
        );
        detection.reload(Some(&now));
        assert!(alerts_to(&detection, "172.20.0.2"), "the new network is in HOME_NET");
        assert_eq!(
            detection.source.vars().get("HTTP_PORTS"),
            Some("[80,8080]"),
            "--var kept"
        );

        let detection = Detection::load(&settings(&rules, &["HOME_NET=[172.17.0.0/16]"]), &at_start).unwrap();
        detection.reload(Some(&now));
        assert!(
            !alerts_to(&detection, "172.20.0.2"),
            "--var HOME_NET wins over the bridges"
        );
    }
}
