//! `pcre:"/pattern/flags"` compiled with the `regex` crate's bytes API, and
//! the PCRE features that crate does not have.
//!
//! The `regex` crate runs in time linear in the input (no backtracking), so
//! a rule cannot stall a worker, at the price of PCRE features that need
//! backtracking or are Perl-only. A pcre using one of these is rejected and
//! its rule skipped with a warning that names the feature:
//!
//! * backreferences (`\1`, `\g{1}`, `\k<name>`, `(?P=name)`);
//! * lookahead and lookbehind (`(?=`, `(?!`, `(?<=`, `(?<!`);
//! * atomic groups (`(?>`) and possessive quantifiers (`a*+`, `a++`,
//!   `a?+`, `a{2}+`);
//! * recursion and subroutine calls (`(?R)`, `(?1)`, `(?&name)`),
//!   conditionals (`(?(`), `\K`, `\G`, `\Q...\E`, callouts, verbs
//!   (`(*SKIP)`).
//!
//! Smaller differences that compile but behave differently: `$` without
//! `m` matches only at the very end of the buffer (PCRE also matches before
//! a final newline); the pattern is compiled with Unicode off, so `.`, `\w`
//! and classes match bytes, as PCRE without `UTF`.
//!
//! Flags: `i` (caseless), `s` (dot matches newline), `m` (multi-line), `x`
//! (extended), `R` (relative to the previous match), `A` (anchored at the
//! search start), `G` (ungreedy: the regex crate's swap_greed), `E` (no-op:
//! `$` already matches only at the end), `B` and `O` (accepted, no-op).
//! Buffer flags (`U`, `H`, `P`, `C`, `I`, `D`, `M`, `S`, `Y`, `V`, `W`,
//! `Q`) select HTTP buffers, which this engine does not have: the rule is
//! skipped.

use regex::bytes::RegexBuilder;

use crate::rule::Pcre;

/// The compiled-program size a pcre may reach (the regex crate's default is
/// 10 MiB per regex; a rule set may hold thousands).
const SIZE_LIMIT: usize = 2 << 20;

/// Parses the value of a `pcre` keyword (quotes included, `!` allowed).
pub(crate) fn parse_pcre(value: &str) -> Result<Pcre, String> {
    let (negated, rest) = match value.trim().strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, value.trim()),
    };
    let quoted = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| "pcre value must be quoted: \"/pattern/flags\"".to_string())?;
    let quoted = unescape_rule_chars(quoted);
    let body = quoted
        .strip_prefix('/')
        .ok_or_else(|| "pcre must start with `/`".to_string())?;
    let end = body.rfind('/').ok_or_else(|| "pcre has no closing `/`".to_string())?;
    let (pattern, flags) = (&body[..end], &body[end + 1..]);
    if pattern.is_empty() {
        return Err("empty pcre pattern".to_string());
    }
    let mut relative = false;
    let mut anchored = false;
    let (mut i, mut s, mut m, mut x, mut g) = (false, false, false, false, false);
    for f in flags.chars() {
        match f {
            'i' => i = true,
            's' => s = true,
            'm' => m = true,
            'x' => x = true,
            'R' => relative = true,
            'A' => anchored = true,
            'G' => g = true,
            'E' | 'B' | 'O' => {}
            'U' | 'H' | 'P' | 'C' | 'I' | 'D' | 'M' | 'S' | 'Y' | 'V' | 'W' | 'Q' => {
                return Err(format!(
                    "pcre flag `{f}` selects an HTTP buffer, which this engine does not inspect"
                ))
            }
            other => return Err(format!("unknown pcre flag `{other}`")),
        }
    }
    if let Some(feature) = unsupported_feature(pattern, x) {
        return Err(format!("pcre uses {feature}, which the regex crate does not support"));
    }
    let full = if anchored {
        // The newline ends an `x`-mode comment before the closing group.
        if x {
            format!("\\A(?:{pattern}\n)")
        } else {
            format!("\\A(?:{pattern})")
        }
    } else {
        pattern.to_string()
    };
    let regex = RegexBuilder::new(&full)
        .unicode(false)
        .case_insensitive(i)
        .dot_matches_new_line(s)
        .multi_line(m)
        .ignore_whitespace(x)
        .swap_greed(g)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("pcre does not compile: {}", one_line(&e.to_string())))?;
    Ok(Pcre {
        regex,
        negated,
        relative,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Removes the rule-level escapes `\;` and `\"` (an escaped backslash stays
/// as written, for the regex).
fn unescape_rule_chars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ (';' | '"')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The first PCRE-only construct in `pattern`, named for the warning.
fn unsupported_feature(pattern: &str, extended: bool) -> Option<&'static str> {
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    let mut prev_quantifier = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let n = *b.get(i + 1)?;
            if !in_class {
                match n {
                    b'1'..=b'9' => return Some("a backreference"),
                    b'g' | b'k' => return Some("a backreference"),
                    b'K' => return Some("`\\K` (match reset)"),
                    b'G' => return Some("`\\G`"),
                    b'Q' => return Some("`\\Q...\\E` quoting"),
                    _ => {}
                }
            }
            i += 2;
            prev_quantifier = false;
            continue;
        }
        if in_class {
            if c == b']' {
                in_class = false;
            }
            i += 1;
            continue;
        }
        if extended && c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        match c {
            b'[' => {
                in_class = true;
                // A `]` right after `[` or `[^` is a literal.
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
                prev_quantifier = false;
            }
            b'(' => {
                let rest = &b[i + 1..];
                if rest.starts_with(b"?=") || rest.starts_with(b"?!") {
                    return Some("a lookahead");
                }
                if rest.starts_with(b"?<=") || rest.starts_with(b"?<!") {
                    return Some("a lookbehind");
                }
                if rest.starts_with(b"?>") {
                    return Some("an atomic group");
                }
                if rest.starts_with(b"?P=") {
                    return Some("a backreference");
                }
                if rest.starts_with(b"?R)") || rest.starts_with(b"?&") || rest.starts_with(b"?P>") {
                    return Some("recursion");
                }
                if rest.len() > 1 && rest[0] == b'?' && (rest[1].is_ascii_digit() || rest[1] == b'+' || rest[1] == b'-')
                {
                    return Some("a subroutine call");
                }
                if rest.starts_with(b"?(") {
                    return Some("a conditional group");
                }
                if rest.starts_with(b"?C") {
                    return Some("a callout");
                }
                if rest.starts_with(b"*") {
                    return Some("a backtracking verb");
                }
                prev_quantifier = false;
            }
            b'*' | b'+' | b'?' | b'}' => {
                if prev_quantifier && c == b'+' {
                    return Some("a possessive quantifier");
                }
                // `a+?` is lazy, not possessive; after it, a `+` is a new
                // (invalid) repetition that the compiler reports.
                prev_quantifier = c != b'?' || !prev_quantifier;
                i += 1;
                continue;
            }
            _ => prev_quantifier = false,
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_anchoring() {
        let p = parse_pcre(r#""/^get\s+\/admin/i""#).unwrap();
        assert!(p.regex.is_match(b"GET  /admin"));
        assert!(!p.relative && !p.negated);
        let p = parse_pcre(r#"!"/a.b/sR""#).unwrap();
        assert!(p.negated && p.relative);
        assert!(p.regex.is_match(b"a\nb"));
        let p = parse_pcre(r#""/bc/A""#).unwrap();
        assert!(!p.regex.is_match(b"abc"));
        assert!(p.regex.is_match(b"bcd"));
        let p = parse_pcre("\"/ a b # comment\n/xA\"").unwrap();
        assert!(p.regex.is_match(b"ab"));
        let p = parse_pcre(r#""/\xff\x00/""#).unwrap();
        assert!(p.regex.is_match(b"\xff\x00"));
        let p = parse_pcre(r#""/a\;b/""#).unwrap();
        assert!(p.regex.is_match(b"a;b"));
    }

    #[test]
    fn unsupported_features_are_named() {
        for (pat, what) in [
            (r#""/(a)\1/""#, "backreference"),
            (r#""/foo(?=bar)/""#, "lookahead"),
            (r#""/(?<!x)y/""#, "lookbehind"),
            (r#""/(?>ab)/""#, "atomic group"),
            (r#""/a++b/""#, "possessive"),
            (r#""/a{2}+/""#, "possessive"),
            (r#""/(?R)/""#, "recursion"),
            (r#""/(?(1)a|b)/""#, "conditional"),
            (r#""/a\Kb/""#, "match reset"),
        ] {
            let err = parse_pcre(pat).unwrap_err();
            assert!(err.contains(what), "{pat}: {err}");
        }
        // Lazy quantifiers and escaped pluses are fine.
        assert!(parse_pcre(r#""/a+?b\++/""#).is_ok());
        assert!(parse_pcre(r#""/[(?=]/""#).is_ok());
    }

    #[test]
    fn bad_values() {
        assert!(parse_pcre(r#""/abc/U""#).unwrap_err().contains("HTTP buffer"));
        assert!(parse_pcre(r#""/abc/z""#).unwrap_err().contains("unknown pcre flag"));
        assert!(parse_pcre(r#""abc""#).is_err());
        assert!(parse_pcre(r#""/(abc/""#).unwrap_err().contains("does not compile"));
        assert!(parse_pcre("/abc/").is_err());
    }
}
