//! Which interfaces to capture: `--interface` globs include, `--exclude`
//! globs exclude, and by default every interface but loopback is taken.
//!
//! The globs are matched by a small matcher of our own, not globset:
//! interface names are at most 15 bytes and are not paths, so globset's
//! path semantics (`/` handling, `**`, `{a,b}`) do not apply, while it would
//! bring regex-automata, aho-corasick and bstr into the build and a
//! minimum Rust (1.88) above the workspace's. Supported: `*` (any run,
//! empty included), `?` (one character), `[abc]`, `[a-z]`, `[!a-z]` (one
//! character in or not in a set) and `\x` (a literal `x`). Matching is
//! anchored at both ends and linear with one backtrack point per `*`.

use std::fmt;
use std::str::FromStr;

use crate::link::Link;

/// A glob over interface names.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// Why a glob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobError {
    /// Empty pattern.
    Empty,
    /// A `[` without its `]` (a `]` right after `[` or `[!` is a member,
    /// so `[]` and `[!]` are unclosed).
    UnclosedClass,
    /// A range whose end is below its start (`[z-a]`).
    ReversedRange,
    /// A `\` at the end of the pattern.
    TrailingEscape,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GlobError::Empty => "empty pattern",
            GlobError::UnclosedClass => "'[' without ']'",
            GlobError::ReversedRange => "range end below its start",
            GlobError::TrailingEscape => "'\\' at the end",
        })
    }
}

impl std::error::Error for GlobError {}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    // `**` is `*`.
                    if tokens.last() == Some(&Token::AnyRun) {
                        continue;
                    }
                    Token::AnyRun
                }
                '?' => Token::AnyOne,
                '\\' => Token::Literal(chars.next().ok_or(GlobError::TrailingEscape)?),
                '[' => {
                    let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
                    let mut ranges = Vec::new();
                    // A `]` right after `[` or `[!` is a member.
                    let mut first = true;
                    loop {
                        let c = chars.next().ok_or(GlobError::UnclosedClass)?;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let c = if c == '\\' {
                            chars.next().ok_or(GlobError::UnclosedClass)?
                        } else {
                            c
                        };
                        let mut lookahead = chars.clone();
                        if lookahead.next() == Some('-') && lookahead.peek().is_some_and(|&e| e != ']') {
                            chars.next();
                            let end = chars.next().ok_or(GlobError::UnclosedClass)?;
                            if end < c {
                                return Err(GlobError::ReversedRange);
                            }
                            ranges.push((c, end));
                        } else {
                            ranges.push((c, c));
                        }
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let (mut t, mut n) = (0, 0);
        // Where the last `*` was and how much of the name it has taken.
        let mut backtrack: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::AnyRun) => {
                    backtrack = Some((t, n));
                    t += 1;
                    continue;
                }
                Some(token) if token.matches(name[n]) => {
                    t += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            // Mismatch: let the last `*` take one more character.
            match backtrack {
                Some((star, taken)) => {
                    t = star + 1;
                    n = taken + 1;
                    backtrack = Some((star, taken + 1));
                }
                None => return false,
            }
        }
        self.tokens[t..].iter().all(|token| *token == Token::AnyRun)
    }
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyOne => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated,
        }
    }
}

impl FromStr for Glob {
    type Err = GlobError;

    fn from_str(pattern: &str) -> Result<Self, GlobError> {
        Self::new(pattern)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.pattern)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// The interfaces to capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Names to capture (`--interface`); empty means every interface.
    pub include: Vec<Glob>,
    /// Names never to capture (`--exclude`); they win over `include`.
    pub exclude: Vec<Glob>,
}

impl Selection {
    /// Every interface but loopback.
    pub fn all() -> Self {
        Self::default()
    }

    /// A selection from patterns as users write them.
    pub fn new(include: &[&str], exclude: &[&str]) -> Result<Self, GlobError> {
        let compile = |patterns: &[&str]| patterns.iter().map(|p| Glob::new(p)).collect::<Result<Vec<_>, _>>();
        Ok(Self {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    /// Whether the name passes the globs: matched by an include glob (or
    /// there is none) and by no exclude glob. Names only: loopback is left
    /// out by [`Self::selects_link`].
    pub fn selects(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(name)))
            && !self.exclude.iter().any(|g| g.matches(name))
    }

    /// Whether to capture `link`: never loopback (`IFF_LOOPBACK`), else as
    /// [`Self::selects`] says for its name.
    pub fn selects_link(&self, link: &Link) -> bool {
        !link.loopback && self.selects(&link.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(matches("eth0", "eth0"));
        assert!(!matches("eth0", "eth01"));
        assert!(!matches("eth0", "eth"));
        assert!(matches("veth*", "veth"));
        assert!(matches("veth*", "vethc1"));
        assert!(!matches("veth*", "xveth"));
        assert!(matches("*", ""));
        assert!(matches("*", "docker0"));
        assert!(matches("**", "docker0"));
        assert!(matches("*0", "docker0"));
        assert!(matches("d*r0", "docker0"));
        assert!(!matches("d*r0", "docker1"));
        assert!(matches("eth?", "eth1"));
        assert!(!matches("eth?", "eth"));
        assert!(!matches("eth?", "eth10"));
        assert!(matches("br-????????????", "br-0123456789ab"));
    }

    #[test]
    fn stars_backtrack() {
        assert!(matches("*c*c*", "vethcc"));
        assert!(matches("*ab", "aaab"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("*a*a*a*", "aaa"));
        assert!(!matches("*a*a*a*a*", "aaa"));
        assert!(matches("v*h?1", "vethc1"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(matches("eth[0-3]", "eth2"));
        assert!(!matches("eth[0-3]", "eth4"));
        assert!(matches("eth[!0-3]", "eth4"));
        assert!(matches("eth[^0-3]", "eth4"));
        assert!(!matches("eth[!0-3]", "eth0"));
        assert!(matches("veth[ab]*", "vethb7"));
        assert!(matches("x[]]", "x]"));
        assert!(matches("x[a-]", "x-"));
        assert!(matches(r"br\*", "br*"));
        assert!(!matches(r"br\*", "br0"));
        assert!(matches("é*", "éth0"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("eth[0-"), Err(GlobError::UnclosedClass));
        assert_eq!(Glob::new("eth[0"), Err(GlobError::UnclosedClass));
        assert_eq!(Glob::new("eth[9-0]"), Err(GlobError::ReversedRange));
        assert_eq!(Glob::new("eth\\"), Err(GlobError::TrailingEscape));
        assert_eq!("veth*".parse::<Glob>().map(|g| g.to_string()), Ok("veth*".into()));
    }

    #[test]
    fn selection_includes_and_excludes() {
        let all = Selection::all();
        assert!(all.selects("eth0") && all.selects("lo"));
        let selection = Selection::new(&["veth*", "docker0"], &["vethc9*"]).unwrap();
        assert!(selection.selects("vethc1"));
        assert!(selection.selects("docker0"));
        assert!(!selection.selects("eth0"));
        assert!(!selection.selects("vethc91"));
        let except = Selection::new(&[], &["eth*"]).unwrap();
        assert!(except.selects("docker0") && !except.selects("eth0"));
        assert_eq!(Selection::new(&["ok"], &["[x"]), Err(GlobError::UnclosedClass));
    }

    #[test]
    fn loopback_is_never_selected() {
        let lo = Link {
            ifindex: 1,
            name: "lo".into(),
            kind: None,
            master: None,
            admin_up: true,
            lower_up: true,
            oper_state: crate::link::OperState::Unknown,
            loopback: true,
            mac: None,
            link_netnsid: None,
            peer_ifindex: None,
            mtu: 65536,
            promiscuous: false,
            promiscuity: 0,
        };
        assert!(!Selection::all().selects_link(&lo));
        assert!(!Selection::new(&["lo"], &[]).unwrap().selects_link(&lo));
        let eth = Link {
            loopback: false,
            name: "eth0".into(),
            ..lo
        };
        assert!(Selection::all().selects_link(&eth));
    }
}
