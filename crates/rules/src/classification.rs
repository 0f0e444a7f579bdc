//! The classification table that `classtype` refers to: Suricata's
//! `classification.config` format (`config classification:
//! name,description,priority`) and a built-in copy of Suricata's standard
//! classes, used when the caller has no file of its own.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One class: its description and default priority (1 is the most severe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The short name rules use (`trojan-activity`).
    pub name: Arc<str>,
    /// The human description (`A Network Trojan was detected`).
    pub description: Arc<str>,
    /// The priority alerts of this class get unless the rule sets its own.
    pub priority: u8,
}

/// The classes, by name.
#[derive(Clone, Debug, Default)]
pub struct ClassificationTable {
    classes: HashMap<String, Classification>,
}

/// Suricata's `etc/classification.config`.
const SURICATA_DEFAULT: &str = "\
config classification: not-suspicious,Not Suspicious Traffic,3
config classification: unknown,Unknown Traffic,3
config classification: bad-unknown,Potentially Bad Traffic, 2
config classification: attempted-recon,Attempted Information Leak,2
config classification: successful-recon-limited,Information Leak,2
config classification: successful-recon-largescale,Large Scale Information Leak,2
config classification: attempted-dos,Attempted Denial of Service,2
config classification: successful-dos,Denial of Service,2
config classification: attempted-user,Attempted User Privilege Gain,1
config classification: unsuccessful-user,Unsuccessful User Privilege Gain,1
config classification: successful-user,Successful User Privilege Gain,1
config classification: attempted-admin,Attempted Administrator Privilege Gain,1
config classification: successful-admin,Successful Administrator Privilege Gain,1
config classification: rpc-portmap-decode,Decode of an RPC Query,2
config classification: shellcode-detect,Executable code was detected,1
config classification: string-detect,A suspicious string was detected,3
config classification: suspicious-filename-detect,A suspicious filename was detected,2
config classification: suspicious-login,An attempted login using a suspicious username was detected,2
config classification: system-call-detect,A system call was detected,2
config classification: tcp-connection,A TCP connection was detected,4
config classification: trojan-activity,A Network Trojan was detected, 1
config classification: unusual-client-port-connection,A client was using an unusual port,2
config classification: network-scan,Detection of a Network Scan,3
config classification: denial-of-service,Detection of a Denial of Service Attack,2
config classification: non-standard-protocol,Detection of a non-standard protocol or event,2
config classification: protocol-command-decode,Generic Protocol Command Decode,3
config classification: web-application-activity,access to a potentially vulnerable web application,2
config classification: web-application-attack,Web Application Attack,1
config classification: misc-activity,Misc activity,3
config classification: misc-attack,Misc Attack,2
config classification: icmp-event,Generic ICMP event,3
config classification: inappropriate-content,Inappropriate Content was Detected,1
config classification: policy-violation,Potential Corporate Privacy Violation,1
config classification: default-login-attempt,Attempt to login by a default username and password,2
config classification: targeted-activity,Targeted Malicious Activity was Detected,1
config classification: exploit-kit,Exploit Kit Activity Detected,1
config classification: external-ip-check,Device Retrieving External IP Address Detected,2
config classification: domain-c2,Domain Observed Used for C2 Detected,1
config classification: pup-activity,Possibly Unwanted Program Detected,2
config classification: credential-theft,Successful Credential Theft Detected,1
config classification: social-engineering,Possible Social Engineering Attempted,2
config classification: coin-mining,Crypto Currency Mining Activity Detected,2
config classification: command-and-control,Malware Command and Control Activity Detected,1
";

impl ClassificationTable {
    /// Suricata's standard classes.
    pub fn suricata_default() -> ClassificationTable {
        ClassificationTable::parse(SURICATA_DEFAULT).expect("the built-in classification table parses")
    }

    /// Parses a `classification.config` text. Blank lines and `#` comments
    /// are skipped; a malformed line is an error naming its line number.
    /// A later definition of a name replaces an earlier one.
    pub fn parse(text: &str) -> Result<ClassificationTable, String> {
        let mut table = ClassificationTable::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let body = line
                .strip_prefix("config")
                .map(str::trim_start)
                .and_then(|l| l.strip_prefix("classification"))
                .map(str::trim_start)
                .and_then(|l| l.strip_prefix(':'))
                .ok_or_else(|| {
                    format!(
                        "line {}: expected `config classification: name,description,priority`",
                        i + 1
                    )
                })?;
            // As Suricata's own pattern: the description runs from the first
            // comma to the last, so it may hold commas itself.
            let (Some((name, rest)), true) = (body.split_once(','), body.matches(',').count() >= 2) else {
                return Err(format!("line {}: expected name,description,priority", i + 1));
            };
            let (description, priority) = rest.rsplit_once(',').expect("two commas");
            let (name, description, priority) = (name.trim(), description.trim(), priority.trim());
            if name.is_empty() {
                return Err(format!("line {}: empty class name", i + 1));
            }
            let priority: u8 = priority
                .parse()
                .map_err(|_| format!("line {}: invalid priority `{priority}`", i + 1))?;
            table.insert(name, description, priority);
        }
        Ok(table)
    }

    /// Reads and parses a `classification.config` file.
    pub fn load(path: &Path) -> Result<ClassificationTable, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        ClassificationTable::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds or replaces a class.
    pub fn insert(&mut self, name: &str, description: &str, priority: u8) {
        self.classes.insert(
            name.to_string(),
            Classification {
                name: name.into(),
                description: description.into(),
                priority,
            },
        );
    }

    /// The class called `name`.
    pub fn get(&self, name: &str) -> Option<&Classification> {
        self.classes.get(name)
    }

    /// How many classes the table holds.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether the table holds no class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_has_the_standard_classes() {
        let t = ClassificationTable::suricata_default();
        assert_eq!(t.len(), 43);
        let c = t.get("trojan-activity").unwrap();
        assert_eq!(&*c.description, "A Network Trojan was detected");
        assert_eq!(c.priority, 1);
        assert_eq!(t.get("tcp-connection").unwrap().priority, 4);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let err =
            ClassificationTable::parse("# c\nconfig classification: a,b,1\nconfig classification: x,y\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        let err = ClassificationTable::parse("config classification: a,b,high\n").unwrap_err();
        assert!(err.contains("invalid priority"), "{err}");
        let t = ClassificationTable::parse("config classification: a, desc, with comma,2\n").unwrap();
        assert_eq!(&*t.get("a").unwrap().description, "desc, with comma");
    }
}
