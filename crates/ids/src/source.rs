//! Where the workers' rules come from: the rule files, variables and
//! classification table given at start, loaded into one shared
//! [`RuleSet`], and loaded again on request (SIGHUP). The workers pick the
//! new set up at their next batch, so a reload never stops capture; a
//! reload that fails keeps the rules in use and says why. A reload may
//! bring new variables (HOME_NET recomputed from the host's networks),
//! kept for later reloads once it succeeds.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rules::{ClassificationTable, LoadReport, RuleSet, Vars};

/// What a [`RuleSource`] loads.
#[derive(Clone, Debug, Default)]
pub struct RuleSpec {
    /// The rule files, in order.
    pub files: Vec<PathBuf>,
    /// The variables (`HOME_NET` and the `--var` overrides).
    pub vars: Vars,
    /// A `classification.config` file; Suricata's stock table without one.
    pub classification: Option<PathBuf>,
}

/// Why rules could not be loaded.
#[derive(Debug)]
pub enum SourceError {
    /// A rule file could not be read.
    Rules(rules::LoadError),
    /// The classification file could not be read or parsed.
    Classification {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A reload found files that gave no rule at all where the rules in use
    /// have some, and only skipped ones: most likely a file caught half
    /// written.
    NothingLoaded {
        /// Rules skipped.
        skipped: usize,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Rules(error) => error.fmt(f),
            SourceError::Classification { path, message } => {
                write!(f, "cannot load classification file {}: {message}", path.display())
            }
            SourceError::NothingLoaded { skipped } => {
                write!(f, "no rule loaded ({skipped} skipped)")
            }
        }
    }
}

impl std::error::Error for SourceError {}

/// The rule set the workers share, and how to load it again.
#[derive(Debug)]
pub struct RuleSource {
    /// What the rules in use were loaded from (the variables change when
    /// a reload brings new ones).
    spec: Mutex<RuleSpec>,
    /// The rule files (they never change).
    files: Vec<PathBuf>,
    current: Mutex<Arc<RuleSet>>,
    /// Bumped by each successful load; workers compare it with theirs.
    generation: AtomicU64,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
}

impl RuleSource {
    /// Loads the rules of `spec`: an unreadable file is an error; rules
    /// that do not parse are skipped and listed in the report.
    pub fn load(spec: RuleSpec) -> Result<(Arc<RuleSource>, LoadReport), SourceError> {
        let (rules, report) = load_spec(&spec)?;
        let source = RuleSource {
            files: spec.files.clone(),
            spec: Mutex::new(spec),
            current: Mutex::new(Arc::new(rules)),
            generation: AtomicU64::new(1),
            reloads: AtomicU64::new(0),
            failed_reloads: AtomicU64::new(0),
        };
        Ok((Arc::new(source), report))
    }

    /// A source holding `rules` as they are (tests, benchmarks); reloading
    /// it loads nothing.
    pub fn fixed(rules: RuleSet) -> Arc<RuleSource> {
        Arc::new(RuleSource {
            spec: Mutex::new(RuleSpec::default()),
            files: Vec::new(),
            current: Mutex::new(Arc::new(rules)),
            generation: AtomicU64::new(1),
            reloads: AtomicU64::new(0),
            failed_reloads: AtomicU64::new(0),
        })
    }

    /// Loads the files again. On success the workers take the new rules at
    /// their next batch; on failure the rules in use stay.
    pub fn reload(&self) -> Result<LoadReport, SourceError> {
        self.reload_with(None)
    }

    /// Loads the files again with new variables (HOME_NET recomputed from
    /// the host's current networks): they are kept for later reloads when
    /// the load succeeds; on failure the rules and variables in use stay.
    pub fn reload_with_vars(&self, vars: Vars) -> Result<LoadReport, SourceError> {
        self.reload_with(Some(vars))
    }

    fn reload_with(&self, vars: Option<Vars>) -> Result<LoadReport, SourceError> {
        let mut spec = self.spec.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(vars) = vars {
            spec.vars = vars;
        }
        let loaded = load_spec(&spec).and_then(|(rules, report)| {
            let in_use = self.current().1.len();
            if rules.is_empty() && report.skipped > 0 && in_use > 0 {
                Err(SourceError::NothingLoaded {
                    skipped: report.skipped,
                })
            } else {
                Ok((rules, report))
            }
        });
        match loaded {
            Ok((rules, report)) => {
                *self.spec.lock().unwrap_or_else(PoisonError::into_inner) = spec;
                *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
                self.generation.fetch_add(1, Ordering::Release);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(report)
            }
            Err(error) => {
                self.failed_reloads.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// The generation of the rules in use: one more after each successful
    /// load. A worker reads it once per batch.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The rules in use and their generation.
    pub fn current(&self) -> (u64, Arc<RuleSet>) {
        let rules = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (self.generation.load(Ordering::Acquire), Arc::clone(&rules))
    }

    /// Successful reloads.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Reloads that failed and kept the rules in use.
    pub fn failed_reloads(&self) -> u64 {
        self.failed_reloads.load(Ordering::Relaxed)
    }

    /// The rule files.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The variables the rules in use were loaded with.
    pub fn vars(&self) -> Vars {
        self.spec.lock().unwrap_or_else(PoisonError::into_inner).vars.clone()
    }
}

fn load_spec(spec: &RuleSpec) -> Result<(RuleSet, LoadReport), SourceError> {
    let classes = match &spec.classification {
        Some(path) => ClassificationTable::load(path).map_err(|message| SourceError::Classification {
            path: path.clone(),
            message,
        })?,
        None => ClassificationTable::suricata_default(),
    };
    RuleSet::load_with_classification(&spec.files, &spec.vars, &classes).map_err(SourceError::Rules)
}

/// One line for the log: loaded and skipped counts per the report, and the
/// files.
pub fn describe_load(report: &LoadReport, files: &[PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|f| Path::new(f).display().to_string()).collect();
    format!(
        "{} rules loaded, {} skipped, from {}",
        report.loaded,
        report.skipped,
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn spec_with(text: &str) -> (tempfile::NamedTempFile, RuleSpec) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let spec = RuleSpec {
            files: vec![file.path().to_path_buf()],
            vars: Vars::with_home_net(["172.17.0.0/16"]),
            classification: None,
        };
        (file, spec)
    }

    #[test]
    fn a_reload_takes_the_new_rules_and_bumps_the_generation() {
        let (file, spec) = spec_with("alert tcp any any -> any any (msg:\"a\"; content:\"x\"; sid:1;)\n");
        let (source, report) = RuleSource::load(spec).unwrap();
        assert_eq!((report.loaded, report.skipped), (1, 0));
        assert_eq!(source.generation(), 1);
        std::fs::write(
            file.path(),
            "alert tcp any any -> any any (msg:\"a\"; content:\"x\"; sid:1;)\n\
             alert udp any any -> any any (msg:\"b\"; content:\"y\"; sid:2;)\n",
        )
        .unwrap();
        let report = source.reload().unwrap();
        assert_eq!(report.loaded, 2);
        let (generation, rules) = source.current();
        assert_eq!((generation, rules.len()), (2, 2));
        assert_eq!(source.reloads(), 1);
    }

    #[test]
    fn a_failed_reload_keeps_the_rules_in_use() {
        let (file, spec) = spec_with("alert tcp any any -> any any (msg:\"a\"; content:\"x\"; sid:1;)\n");
        let (source, _) = RuleSource::load(spec).unwrap();
        // Half written: every rule skipped.
        std::fs::write(file.path(), "alert tcp any any -> any any (msg:\"a\"; conte").unwrap();
        let error = source.reload().unwrap_err();
        assert!(matches!(error, SourceError::NothingLoaded { skipped: 1 }), "{error}");
        // Gone.
        let path = file.path().to_path_buf();
        drop(file);
        let error = source.reload().unwrap_err();
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        let (generation, rules) = source.current();
        assert_eq!((generation, rules.len()), (1, 1));
        assert_eq!((source.reloads(), source.failed_reloads()), (0, 2));
    }

    #[test]
    fn an_unreadable_classification_file_is_an_error() {
        let (_file, mut spec) = spec_with("alert tcp any any -> any any (msg:\"a\"; content:\"x\"; sid:1;)\n");
        spec.classification = Some(PathBuf::from("/nonexistent/classification.config"));
        let error = RuleSource::load(spec).unwrap_err();
        assert!(error.to_string().contains("classification"), "{error}");
    }
}

#[cfg(test)]
mod vars_tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_reload_with_new_variables_keeps_them_and_a_failed_one_does_not() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"alert udp any any -> $HOME_NET any (msg:\"in\"; sid:1;)\n")
            .unwrap();
        let spec = RuleSpec {
            files: vec![file.path().to_path_buf()],
            vars: Vars::with_home_net(["172.17.0.0/16"]),
            classification: None,
        };
        let (source, _) = RuleSource::load(spec).unwrap();
        let wider = Vars::with_home_net(["172.17.0.0/16", "172.20.0.0/16"]);
        source.reload_with_vars(wider).unwrap();
        assert_eq!(source.vars().get("HOME_NET"), Some("[172.17.0.0/16,172.20.0.0/16]"));
        assert_eq!(source.generation(), 2);
        // A plain reload keeps them.
        source.reload().unwrap();
        assert_eq!(source.vars().get("HOME_NET"), Some("[172.17.0.0/16,172.20.0.0/16]"));
        // A reload that fails keeps the variables in use.
        let path = file.path().to_path_buf();
        drop(file);
        assert!(source.reload_with_vars(Vars::with_home_net(["10.0.0.0/8"])).is_err());
        assert_eq!(source.vars().get("HOME_NET"), Some("[172.17.0.0/16,172.20.0.0/16]"));
        assert!(!path.exists());
    }
}
