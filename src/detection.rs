//! The signature engine as `run`, `read` and `bench` set it up: the rule
//! variables (HOME_NET from the host's bridge subnets or a default, then
//! the `--var` overrides), loading the rule files with a warning per
//! skipped rule and the counts at start, one stream memory account shared
//! by all workers, a [`SignatureInspector`] per worker, and the reload a
//! SIGHUP asks for.

use std::sync::Arc;

use ids::{RuleSource, RuleSpec, SignatureInspector, SourceError};
use rules::{DetectorConfig, StreamConfig, StreamMemory, Vars};

use crate::settings::{DetectionSettings, SettingError};

/// The loaded rules and what every worker's detection shares.
#[derive(Debug, Clone)]
pub struct Detection {
    source: Arc<RuleSource>,
    memory: Arc<StreamMemory>,
    config: DetectorConfig,
}

impl Detection {
    /// Loads the rules of `settings` with HOME_NET set to `home_nets` (the
    /// default, private ranges, when empty) before the `--var` overrides.
    /// An unreadable file is a [`SettingError`] naming it (exit 2).
    pub fn load(settings: &DetectionSettings, home_nets: &[String]) -> anyhow::Result<Detection> {
        let mut vars = Vars::with_home_net(home_nets);
        for spec in &settings.vars {
            // Checked when the settings were validated.
            vars.apply_override(spec).map_err(anyhow::Error::msg)?;
        }
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
    /// their next batch.
    pub fn reload(&self) {
        match self.source.reload() {
            Ok(report) => {
                for warning in &report.warnings {
                    tracing::warn!("rule skipped: {warning}");
                }
                tracing::info!(
                    loaded = report.loaded,
                    skipped = report.skipped,
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
