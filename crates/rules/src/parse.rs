//! The rule-file parser: lines (with `\` continuations and `#` comments),
//! the header, the option list, and every supported keyword. A rule with
//! an unknown keyword or an invalid value is skipped; the caller gets a
//! [`Warning`] naming the file, the line and the keyword.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::addr::{AddrExpr, PortExpr, Vars};
use crate::classification::ClassificationTable;
use crate::pcre::parse_pcre;
use crate::rule::{
    Action, ByteJump, ByteOp, ByteTest, Content, FlagsMode, FlowOpts, FlowbitCmd, IsDataAt, NumCmp, NumberFormat,
    Origin, PayloadElem, Rule, RuleProto, TcpFlagsMatch, Threshold, ThresholdKind, Track,
};

/// Why one rule was skipped (or a note on one that loaded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file (or source name).
    pub file: PathBuf,
    /// The line where the rule starts (1-based).
    pub line: usize,
    /// The offending keyword (`content`, `pcre`, ...), or `None` for a
    /// header or syntax error.
    pub keyword: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.keyword {
            Some(k) => write!(
                f,
                "{}:{}: keyword `{}`: {}",
                self.file.display(),
                self.line,
                k,
                self.message
            ),
            None => write!(f, "{}:{}: {}", self.file.display(), self.line, self.message),
        }
    }
}

/// What loading rule files did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Rules loaded.
    pub loaded: usize,
    /// Rules skipped (each has a warning).
    pub skipped: usize,
    /// One entry per skipped rule, plus notes on duplicates.
    pub warnings: Vec<Warning>,
}

/// A rule file that could not be read.
#[derive(Debug)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read rule file {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A rule's error: the keyword at fault (if any) and the message.
#[derive(Debug)]
pub(crate) struct RuleError {
    keyword: Option<String>,
    message: String,
}

fn err<T>(keyword: &str, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        keyword: Some(keyword.to_string()),
        message: message.into(),
    })
}

fn syntax<T>(message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        keyword: None,
        message: message.into(),
    })
}

/// Splits a rule file into `(first line number, rule text)`, joining `\`
/// continuations and dropping blank and `#` lines.
pub(crate) fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let (body, continues) = match line.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (line, false),
        };
        match current.as_mut() {
            Some((_, acc)) => acc.push_str(body),
            None => {
                let t = body.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                current = Some((i + 1, body.to_string()));
            }
        }
        if !continues {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// Parses one rule.
pub(crate) fn parse_rule(
    text: &str,
    origin: Origin,
    vars: &Vars,
    classes: &ClassificationTable,
) -> Result<Rule, RuleError> {
    let text = text.trim();
    let open = text
        .find('(')
        .map_or_else(|| syntax("missing `(` before the options"), Ok)?;
    let close = text
        .rfind(')')
        .filter(|c| *c > open)
        .map_or_else(|| syntax("missing closing `)`"), Ok)?;
    if !text[close + 1..].trim().is_empty() {
        return syntax(format!("unexpected text after `)`: `{}`", text[close + 1..].trim()));
    }
    let header: Vec<&str> = text[..open].split_whitespace().collect();
    let [action, proto, src, sport, dir, dst, dport] = header[..] else {
        return syntax(format!(
            "the header must be `action proto src sport -> dst dport`, got `{}`",
            text[..open].trim()
        ));
    };
    let action = match action {
        "alert" => Action::Alert,
        "pass" => Action::Pass,
        other => return syntax(format!("unsupported action `{other}` (alert and pass are)")),
    };
    let proto = match proto {
        "ip" => RuleProto::Ip,
        "tcp" => RuleProto::Tcp,
        "udp" => RuleProto::Udp,
        "icmp" => RuleProto::Icmp,
        other => return syntax(format!("unsupported protocol `{other}` (ip, tcp, udp and icmp are)")),
    };
    let bidirectional = match dir {
        "->" => false,
        "<>" => true,
        other => return syntax(format!("invalid direction `{other}` (-> or <>)")),
    };
    let addr = |s: &str| AddrExpr::parse(s, vars).map_or_else(|e| syntax(format!("address: {e}")), Ok);
    let port = |s: &str| PortExpr::parse(s, vars).map_or_else(|e| syntax(format!("port: {e}")), Ok);
    let mut rule = Rule {
        action,
        proto,
        sid: 0,
        gid: 1,
        rev: 0,
        msg: Arc::from(""),
        classtype: None,
        priority: 3,
        references: Vec::new(),
        metadata: Vec::new(),
        origin,
        src: addr(src)?,
        src_ports: port(sport)?,
        dst: addr(dst)?,
        dst_ports: port(dport)?,
        bidirectional,
        payload: Vec::new(),
        dsize: None,
        flags: None,
        flow: FlowOpts::default(),
        flowbits: Vec::new(),
        noalert: false,
        threshold: None,
        itype: None,
        icode: None,
        ttl: None,
        fast_pattern: None,
    };
    let mut sid = None;
    let mut priority = None;
    let mut has_flow = false;
    for (name, value) in split_options(&text[open + 1..close])? {
        apply_option(
            &mut rule,
            &name,
            value.as_deref(),
            classes,
            &mut sid,
            &mut priority,
            &mut has_flow,
        )?;
    }
    rule.sid = sid.map_or_else(|| syntax("missing `sid`"), Ok)?;
    rule.priority = priority.or(rule.classtype.as_ref().map(|c| c.priority)).unwrap_or(3);
    finish(&mut rule)?;
    Ok(rule)
}

/// Splits the option list into `(keyword, raw value)`: values end at the
/// first `;` not escaped by a backslash (quotes do not protect it, as in
/// Suricata).
fn split_options(s: &str) -> Result<Vec<(String, Option<String>)>, RuleError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        let mut value = None;
        let mut terminated = false;
        for c in chars.by_ref() {
            match c {
                ';' => {
                    terminated = true;
                    break;
                }
                ':' => {
                    value = Some(String::new());
                    break;
                }
                c => name.push(c),
            }
        }
        if let Some(v) = value.as_mut() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        v.push('\\');
                        if let Some(n) = chars.next() {
                            v.push(n);
                        }
                    }
                    ';' => {
                        terminated = true;
                        break;
                    }
                    c => v.push(c),
                }
            }
        }
        let name = name.trim().to_string();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return syntax(format!("invalid option `{}`", name));
        }
        if !terminated {
            return err(&name, "option not terminated by `;`");
        }
        out.push((name, value.map(|v| v.trim().to_string())));
    }
    Ok(out)
}

fn need<'a>(keyword: &str, value: Option<&'a str>) -> Result<&'a str, RuleError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => err(keyword, "needs a value"),
    }
}

fn no_value(keyword: &str, value: Option<&str>) -> Result<(), RuleError> {
    match value {
        None => Ok(()),
        Some(v) => err(keyword, format!("takes no value, got `{v}`")),
    }
}

/// Strips the quotes of a quoted value (they are optional for `msg`).
fn unquote<'a>(keyword: &str, v: &'a str) -> Result<&'a str, RuleError> {
    match v.strip_prefix('"') {
        Some(inner) => match inner.strip_suffix('"') {
            Some(inner) if !inner.ends_with('\\') || inner.ends_with("\\\\") => Ok(inner),
            _ => err(keyword, "unterminated quote"),
        },
        None => Ok(v),
    }
}

/// Removes backslash escapes (`\"`, `\;`, `\\`, `\:`).
fn unescape_text(keyword: &str, v: &str) -> Result<String, RuleError> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | ';' | '\\' | ':')) => out.push(n),
                Some(n) => return err(keyword, format!("invalid escape `\\{n}`")),
                None => return err(keyword, "trailing backslash"),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_num<T: std::str::FromStr>(keyword: &str, v: &str) -> Result<T, RuleError> {
    v.trim()
        .parse()
        .map_or_else(|_| err(keyword, format!("invalid number `{}`", v.trim())), Ok)
}

/// A decimal or `0x` hexadecimal unsigned value.
fn parse_u64(keyword: &str, v: &str) -> Result<u64, RuleError> {
    let v = v.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    parsed.map_or_else(|_| err(keyword, format!("invalid number `{v}`")), Ok)
}

/// The content bytes: quoted text with `|hex|` sections and `\` escapes.
fn parse_content_bytes(v: &str) -> Result<Vec<u8>, RuleError> {
    let inner = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map_or_else(|| err("content", "value must be quoted"), Ok)?;
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(n @ (b'"' | b';' | b'\\' | b':')) => out.push(n),
                Some(n) => return err("content", format!("invalid escape `\\{}`", n as char)),
                None => return err("content", "trailing backslash"),
            },
            b'"' => return err("content", "unescaped `\"` inside the content"),
            b';' => return err("content", "unescaped `;` inside the content"),
            b'|' => {
                let mut digits = Vec::new();
                loop {
                    match bytes.next() {
                        Some(b'|') => break,
                        Some(b' ') => {
                            if digits.len() % 2 == 1 {
                                return err("content", "odd number of hex digits in a byte");
                            }
                        }
                        Some(h) if h.is_ascii_hexdigit() => digits.push(h),
                        Some(h) => return err("content", format!("invalid hex character `{}`", h as char)),
                        None => return err("content", "unterminated `|` hex section"),
                    }
                }
                if digits.len() % 2 == 1 {
                    return err("content", "odd number of hex digits");
                }
                for pair in digits.chunks(2) {
                    let s = std::str::from_utf8(pair).expect("hex digits are ASCII");
                    out.push(u8::from_str_radix(s, 16).expect("validated hex"));
                }
            }
            b => out.push(b),
        }
    }
    if out.is_empty() {
        return err("content", "empty content");
    }
    Ok(out)
}

fn last_content<'a>(rule: &'a mut Rule, keyword: &str) -> Result<&'a mut Content, RuleError> {
    match rule.payload.last_mut() {
        Some(PayloadElem::Content(c)) => Ok(&mut **c),
        _ => err(keyword, "must follow a `content`"),
    }
}

fn apply_option(
    rule: &mut Rule,
    name: &str,
    value: Option<&str>,
    classes: &ClassificationTable,
    sid: &mut Option<u32>,
    priority: &mut Option<u8>,
    has_flow: &mut bool,
) -> Result<(), RuleError> {
    match name {
        "msg" => rule.msg = Arc::from(unescape_text(name, unquote(name, need(name, value)?)?)?),
        "sid" => {
            let n: u32 = parse_num(name, need(name, value)?)?;
            if n == 0 {
                return err(name, "sid must be positive");
            }
            if sid.replace(n).is_some() {
                return err(name, "given twice");
            }
        }
        "rev" => rule.rev = parse_num(name, need(name, value)?)?,
        "gid" => rule.gid = parse_num(name, need(name, value)?)?,
        "classtype" => {
            let v = need(name, value)?;
            let class = classes
                .get(v)
                .map_or_else(|| err(name, format!("unknown class `{v}`")), Ok)?;
            rule.classtype = Some(class.clone());
        }
        "priority" => {
            let p: u8 = parse_num(name, need(name, value)?)?;
            if !(1..=255).contains(&p) {
                return err(name, "priority must be 1 to 255");
            }
            *priority = Some(p);
        }
        "reference" => rule.references.push(need(name, value)?.to_string()),
        "metadata" => rule.metadata.push(need(name, value)?.to_string()),
        "content" => {
            let v = need(name, value)?;
            let (negated, v) = match v.strip_prefix('!') {
                Some(r) => (true, r.trim_start()),
                None => (false, v),
            };
            rule.payload.push(PayloadElem::Content(Box::new(Content::new(
                parse_content_bytes(v)?,
                negated,
            ))));
        }
        "nocase" => {
            no_value(name, value)?;
            last_content(rule, name)?.nocase = true;
        }
        "rawbytes" => {
            no_value(name, value)?;
            last_content(rule, name)?;
        }
        "offset" | "depth" | "distance" | "within" => {
            let v = need(name, value)?;
            let c = last_content(rule, name)?;
            match name {
                "offset" => set_once(name, &mut c.offset, parse_num::<u32>(name, v)?)?,
                "depth" => {
                    let d: u32 = parse_num(name, v)?;
                    if d == 0 {
                        return err(name, "depth must be positive");
                    }
                    set_once(name, &mut c.depth, d)?
                }
                "distance" => set_once(name, &mut c.distance, parse_num::<i32>(name, v)?)?,
                _ => {
                    let w: u32 = parse_num(name, v)?;
                    if w == 0 {
                        return err(name, "within must be positive");
                    }
                    set_once(name, &mut c.within, w)?
                }
            }
        }
        "startswith" | "endswith" => {
            no_value(name, value)?;
            let c = last_content(rule, name)?;
            if name == "startswith" {
                c.startswith = true;
            } else {
                c.endswith = true;
            }
        }
        "fast_pattern" => {
            let c = last_content(rule, name)?;
            let slice = match value {
                None | Some("only") => None,
                Some(v) => {
                    let (o, l) = v.split_once(',').map_or_else(
                        || err(name, format!("expected `only` or `offset,length`, got `{v}`")),
                        Ok,
                    )?;
                    let (o, l): (usize, usize) = (parse_num(name, o)?, parse_num(name, l)?);
                    if l == 0 || o + l > c.pattern.len() {
                        return err(
                            name,
                            format!("slice {o},{l} is outside the {}-byte content", c.pattern.len()),
                        );
                    }
                    Some((o, l))
                }
            };
            if c.negated {
                return err(name, "cannot be set on a negated content");
            }
            if c.fast_pattern.replace(slice).is_some() {
                return err(name, "given twice on one content");
            }
        }
        "isdataat" => {
            let v = need(name, value)?;
            let mut parts = v.split(',').map(str::trim);
            let first = parts.next().unwrap_or_default();
            let (negated, n) = match first.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, first),
            };
            let n: u32 = parse_num(name, n)?;
            let mut relative = false;
            for p in parts {
                match p {
                    "relative" => relative = true,
                    "rawbytes" => {}
                    other => return err(name, format!("unknown option `{other}`")),
                }
            }
            rule.payload
                .push(PayloadElem::IsDataAt(IsDataAt { n, negated, relative }));
        }
        "pcre" => {
            let pcre = parse_pcre(need(name, value)?).map_or_else(|e| err(name, e), Ok)?;
            rule.payload.push(PayloadElem::Pcre(pcre));
        }
        "byte_test" => rule
            .payload
            .push(PayloadElem::ByteTest(parse_byte_test(need(name, value)?)?)),
        "byte_jump" => rule
            .payload
            .push(PayloadElem::ByteJump(parse_byte_jump(need(name, value)?)?)),
        "dsize" => set_once(
            name,
            &mut rule.dsize,
            parse_cmp(name, need(name, value)?, u64::from(u16::MAX))?,
        )?,
        "itype" => set_once(name, &mut rule.itype, parse_cmp(name, need(name, value)?, 255)?)?,
        "icode" => set_once(name, &mut rule.icode, parse_cmp(name, need(name, value)?, 255)?)?,
        "ttl" => set_once(name, &mut rule.ttl, parse_cmp(name, need(name, value)?, 255)?)?,
        "flags" => set_once(name, &mut rule.flags, parse_flags(need(name, value)?)?)?,
        "flow" => {
            if std::mem::replace(has_flow, true) {
                return err(name, "given twice");
            }
            rule.flow = parse_flow(need(name, value)?)?;
        }
        "flowbits" => match parse_flowbits(need(name, value)?)? {
            Some(cmd) => rule.flowbits.push(cmd),
            None => rule.noalert = true,
        },
        "noalert" => {
            no_value(name, value)?;
            rule.noalert = true;
        }
        "threshold" | "detection_filter" => {
            if rule.threshold.is_some() {
                return err(name, "a rule takes one threshold or detection_filter");
            }
            rule.threshold = Some(parse_threshold(name, need(name, value)?)?);
        }
        other => return err(other, "unsupported keyword"),
    }
    Ok(())
}

fn set_once<T>(keyword: &str, slot: &mut Option<T>, value: T) -> Result<(), RuleError> {
    if slot.replace(value).is_some() {
        return err(keyword, "given twice");
    }
    Ok(())
}

/// `N`, `=N`, `!N`, `<N`, `>N`, `<=N`, `>=N`, `N<>M`, with values up to
/// `max`.
fn parse_cmp(keyword: &str, v: &str, max: u64) -> Result<NumCmp, RuleError> {
    let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    let num = |s: &str| -> Result<u64, RuleError> {
        let n = parse_num::<u64>(keyword, s)?;
        if n > max {
            return err(keyword, format!("value {n} above {max}"));
        }
        Ok(n)
    };
    let cmp = if let Some((a, b)) = v.split_once("<>") {
        let (a, b) = (num(a)?, num(b)?);
        if a >= b {
            return err(keyword, format!("empty range `{v}`"));
        }
        NumCmp::Between(a, b)
    } else if let Some(n) = v.strip_prefix("<=") {
        NumCmp::Le(num(n)?)
    } else if let Some(n) = v.strip_prefix(">=") {
        NumCmp::Ge(num(n)?)
    } else if let Some(n) = v.strip_prefix('<') {
        NumCmp::Lt(num(n)?)
    } else if let Some(n) = v.strip_prefix('>') {
        NumCmp::Gt(num(n)?)
    } else if let Some(n) = v.strip_prefix('!') {
        NumCmp::Ne(num(n)?)
    } else {
        NumCmp::Eq(num(v.strip_prefix('=').unwrap_or(&v))?)
    };
    Ok(cmp)
}

fn flag_bit(c: char) -> Option<u8> {
    Some(match c {
        'F' => 0x01,
        'S' => 0x02,
        'R' => 0x04,
        'P' => 0x08,
        'A' => 0x10,
        'U' => 0x20,
        'E' | '2' => 0x40,
        'C' | '1' => 0x80,
        _ => return None,
    })
}

/// `flags:[+*!]SAFRPUCE[+*!][,mask]`; `0` is "no flag set".
fn parse_flags(v: &str) -> Result<TcpFlagsMatch, RuleError> {
    let (set, mask) = match v.split_once(',') {
        Some((s, m)) => (s.trim(), Some(m.trim())),
        None => (v.trim(), None),
    };
    let mut mode = FlagsMode::Exact;
    let mut flags = 0u8;
    let mut saw_zero = false;
    for c in set.chars() {
        match c {
            '+' | '*' | '!' => {
                if mode != FlagsMode::Exact {
                    return err("flags", "more than one modifier");
                }
                mode = match c {
                    '+' => FlagsMode::All,
                    '*' => FlagsMode::Any,
                    _ => FlagsMode::None,
                };
            }
            '0' => saw_zero = true,
            c => flags |= flag_bit(c).map_or_else(|| err("flags", format!("unknown flag `{c}`")), Ok)?,
        }
    }
    if saw_zero && (flags != 0 || mode != FlagsMode::Exact) {
        return err("flags", "`0` (no flag) combined with flags or a modifier");
    }
    if flags == 0 && !saw_zero {
        return err("flags", "no flag given");
    }
    let mut ignore = 0u8;
    if let Some(m) = mask {
        for c in m.chars() {
            ignore |= flag_bit(c).map_or_else(|| err("flags", format!("unknown flag `{c}` in the mask")), Ok)?;
        }
    }
    Ok(TcpFlagsMatch { mode, flags, ignore })
}

fn parse_flow(v: &str) -> Result<FlowOpts, RuleError> {
    let mut f = FlowOpts::default();
    let set = |slot: &mut Option<bool>, val: bool, opt: &str| {
        if slot.is_some_and(|old| old != val) {
            return err("flow", format!("`{opt}` contradicts an earlier option"));
        }
        *slot = Some(val);
        Ok(())
    };
    for opt in v.split(',').map(str::trim) {
        match opt {
            "to_server" | "from_client" => set(&mut f.to_server, true, opt)?,
            "to_client" | "from_server" => set(&mut f.to_server, false, opt)?,
            "established" => set(&mut f.established, true, opt)?,
            "not_established" => set(&mut f.established, false, opt)?,
            "stateless" => {}
            "only_stream" => f.only_stream = true,
            "no_stream" => f.no_stream = true,
            other => return err("flow", format!("unknown option `{other}`")),
        }
    }
    if f.only_stream && f.no_stream {
        return err("flow", "`only_stream` and `no_stream` together");
    }
    Ok(f)
}

fn flowbit_names(v: &str, allow_or: bool) -> Result<(Vec<Arc<str>>, bool), RuleError> {
    let (sep, any) = if v.contains('|') {
        if !allow_or {
            return err("flowbits", "`|` is only valid with isset and isnotset");
        }
        ('|', true)
    } else {
        ('&', false)
    };
    if v.contains('|') && v.contains('&') {
        return err("flowbits", "`|` and `&` mixed in one group");
    }
    let mut names = Vec::new();
    for n in v.split(sep).map(str::trim) {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return err("flowbits", format!("invalid flowbit name `{n}`"));
        }
        names.push(Arc::from(n));
    }
    Ok((names, any))
}

/// A flowbits command; `None` for `noalert`.
fn parse_flowbits(v: &str) -> Result<Option<FlowbitCmd>, RuleError> {
    let (cmd, names) = match v.split_once(',') {
        Some((c, n)) => (c.trim(), Some(n.trim())),
        None => (v.trim(), None),
    };
    if cmd == "noalert" {
        return match names {
            None => Ok(None),
            Some(_) => err("flowbits", "noalert takes no name"),
        };
    }
    let names = names.map_or_else(|| err("flowbits", format!("`{cmd}` needs a name")), Ok)?;
    Ok(Some(match cmd {
        "set" => FlowbitCmd::Set(flowbit_names(names, false)?.0),
        "unset" => FlowbitCmd::Unset(flowbit_names(names, false)?.0),
        "toggle" => FlowbitCmd::Toggle(flowbit_names(names, false)?.0),
        "isset" => {
            let (names, any) = flowbit_names(names, true)?;
            FlowbitCmd::IsSet { names, any }
        }
        "isnotset" => {
            let (names, any) = flowbit_names(names, true)?;
            FlowbitCmd::IsNotSet { names, any }
        }
        other => return err("flowbits", format!("unknown command `{other}`")),
    }))
}

/// `threshold: type T, track X, count N, seconds S` or
/// `detection_filter: track X, count N, seconds S`.
fn parse_threshold(keyword: &str, v: &str) -> Result<Threshold, RuleError> {
    let mut kind = (keyword == "detection_filter").then_some(ThresholdKind::DetectionFilter);
    let (mut track, mut count, mut seconds) = (None, None, None);
    for part in v.split(',').map(str::trim) {
        let (k, val) = part
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .map_or_else(|| err(keyword, format!("expected `name value`, got `{part}`")), Ok)?;
        match k {
            "type" if keyword == "threshold" => {
                let t = match val {
                    "limit" => ThresholdKind::Limit,
                    "threshold" => ThresholdKind::Threshold,
                    "both" => ThresholdKind::Both,
                    other => return err(keyword, format!("unknown type `{other}`")),
                };
                set_once(keyword, &mut kind, t)?;
            }
            "track" => {
                let t = match val {
                    "by_src" => Track::BySrc,
                    "by_dst" => Track::ByDst,
                    "by_both" => Track::ByBoth,
                    "by_rule" => Track::ByRule,
                    other => return err(keyword, format!("unknown track `{other}`")),
                };
                set_once(keyword, &mut track, t)?;
            }
            "count" => set_once(keyword, &mut count, parse_num::<u32>(keyword, val)?)?,
            "seconds" => set_once(keyword, &mut seconds, parse_num::<u32>(keyword, val)?)?,
            other => return err(keyword, format!("unknown option `{other}`")),
        }
    }
    let (Some(kind), Some(track), Some(count), Some(seconds)) = (kind, track, count, seconds) else {
        let need = if keyword == "threshold" {
            "type, track, count and seconds"
        } else {
            "track, count and seconds"
        };
        return err(keyword, format!("needs {need}"));
    };
    if count == 0 || seconds == 0 {
        return err(keyword, "count and seconds must be positive");
    }
    Ok(Threshold {
        kind,
        track,
        count,
        seconds,
    })
}

/// Options shared by byte_test and byte_jump after their positional
/// fields.
struct ByteOpts {
    relative: bool,
    endian: Option<bool>,
    string: bool,
    base: Option<u32>,
    bitmask: Option<u64>,
}

fn byte_option(keyword: &str, opt: &str, o: &mut ByteOpts) -> Result<bool, RuleError> {
    match opt {
        "relative" => o.relative = true,
        "big" | "little" => {
            if o.endian.replace(opt == "big").is_some() {
                return err(keyword, "endianness given twice");
            }
        }
        "string" => o.string = true,
        "hex" | "dec" | "oct" => {
            let base = match opt {
                "hex" => 16,
                "dec" => 10,
                _ => 8,
            };
            if o.base.replace(base).is_some() {
                return err(keyword, "string base given twice");
            }
        }
        "dce" => {
            return err(
                keyword,
                "`dce` needs the DCE/RPC parser, which this engine does not have",
            )
        }
        _ => {
            if let Some(m) = opt.strip_prefix("bitmask") {
                let m = parse_u64(keyword, m)?;
                if m == 0 {
                    return err(keyword, "bitmask must be non-zero");
                }
                o.bitmask = Some(m);
                return Ok(true);
            }
            return Ok(false);
        }
    }
    Ok(true)
}

fn byte_format(keyword: &str, o: &ByteOpts, nbytes: usize) -> Result<NumberFormat, RuleError> {
    if o.string {
        if o.endian.is_some() {
            return err(keyword, "`string` with an endianness");
        }
        if !(1..=23).contains(&nbytes) {
            return err(keyword, "string conversion reads 1 to 23 bytes");
        }
        Ok(NumberFormat::String(o.base.unwrap_or(10)))
    } else {
        if o.base.is_some() {
            return err(keyword, "hex, dec and oct need `string`");
        }
        if !(1..=8).contains(&nbytes) {
            return err(keyword, "binary conversion reads 1 to 8 bytes");
        }
        Ok(if o.endian == Some(false) {
            NumberFormat::Little
        } else {
            NumberFormat::Big
        })
    }
}

fn parse_byte_test(v: &str) -> Result<ByteTest, RuleError> {
    const K: &str = "byte_test";
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.len() < 4 {
        return err(K, "needs bytes, operator, value and offset");
    }
    let nbytes: usize = parse_num(K, parts[0])?;
    let (negate, op) = match parts[1].strip_prefix('!') {
        Some(op) => (true, op),
        None => (false, parts[1]),
    };
    let op = match op {
        "<" => ByteOp::Lt,
        ">" => ByteOp::Gt,
        "=" => ByteOp::Eq,
        "<=" => ByteOp::Le,
        ">=" => ByteOp::Ge,
        "&" => ByteOp::And,
        "^" => ByteOp::Xor,
        other => return err(K, format!("unknown operator `{other}`")),
    };
    let value = parse_u64(K, parts[2])?;
    let offset: i32 = parse_num(K, parts[3])?;
    let mut o = ByteOpts {
        relative: false,
        endian: None,
        string: false,
        base: None,
        bitmask: None,
    };
    for opt in &parts[4..] {
        if !byte_option(K, opt, &mut o)? {
            return err(K, format!("unknown option `{opt}`"));
        }
    }
    let format = byte_format(K, &o, nbytes)?;
    Ok(ByteTest {
        nbytes,
        op,
        negate,
        value,
        offset,
        relative: o.relative,
        format,
        bitmask: o.bitmask,
    })
}

fn parse_byte_jump(v: &str) -> Result<ByteJump, RuleError> {
    const K: &str = "byte_jump";
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.len() < 2 {
        return err(K, "needs bytes and offset");
    }
    let nbytes: usize = parse_num(K, parts[0])?;
    let offset: i32 = parse_num(K, parts[1])?;
    let mut o = ByteOpts {
        relative: false,
        endian: None,
        string: false,
        base: None,
        bitmask: None,
    };
    let (mut multiplier, mut align, mut from_beginning, mut from_end, mut post_offset) = (1u64, false, false, false, 0);
    for opt in &parts[2..] {
        if byte_option(K, opt, &mut o)? {
            continue;
        }
        match *opt {
            "align" => align = true,
            "from_beginning" => from_beginning = true,
            "from_end" => from_end = true,
            _ => {
                if let Some(m) = opt.strip_prefix("multiplier") {
                    multiplier = parse_num(K, m)?;
                    if multiplier == 0 {
                        return err(K, "multiplier must be positive");
                    }
                } else if let Some(p) = opt.strip_prefix("post_offset") {
                    post_offset = parse_num(K, p)?;
                } else {
                    return err(K, format!("unknown option `{opt}`"));
                }
            }
        }
    }
    if from_beginning && from_end {
        return err(K, "from_beginning and from_end together");
    }
    let format = byte_format(K, &o, nbytes)?;
    Ok(ByteJump {
        nbytes,
        offset,
        relative: o.relative,
        multiplier,
        format,
        align,
        from_beginning,
        from_end,
        post_offset,
        bitmask: o.bitmask,
    })
}

/// Checks the content modifiers and picks the fast pattern.
fn finish(rule: &mut Rule) -> Result<(), RuleError> {
    let mut marked = None;
    let mut longest: Option<(usize, usize)> = None;
    for (i, elem) in rule.payload.iter_mut().enumerate() {
        let PayloadElem::Content(c) = elem else { continue };
        let len = c.pattern.len() as u64;
        let absolute = c.offset.is_some() || c.depth.is_some();
        if absolute && c.is_relative() {
            return err("content", "offset/depth mixed with distance/within on one content");
        }
        if c.startswith && (absolute || c.is_relative()) {
            return err(
                "startswith",
                "cannot be combined with offset, depth, distance or within",
            );
        }
        if c.depth.is_some_and(|d| u64::from(d) < len) {
            return err("depth", format!("depth smaller than the {len}-byte content"));
        }
        if c.within.is_some_and(|w| u64::from(w) < len) {
            return err("within", format!("within smaller than the {len}-byte content"));
        }
        if c.startswith {
            c.offset = Some(0);
            c.depth = Some(c.pattern.len() as u32);
        }
        c.finish();
        if c.fast_pattern.is_some() {
            if marked.is_some() {
                return err("fast_pattern", "set on more than one content");
            }
            marked = Some(i);
        }
        if !c.negated && longest.is_none_or(|(_, l)| c.pattern.len() > l) {
            longest = Some((i, c.pattern.len()));
        }
    }
    rule.fast_pattern = marked.or(longest.map(|(i, _)| i)).map(|i| {
        let PayloadElem::Content(c) = &rule.payload[i] else {
            unreachable!("fast pattern indexes a content")
        };
        let bytes = match c.fast_pattern {
            Some(Some((o, l))) => c.pattern[o..o + l].to_vec(),
            _ => c.pattern.clone(),
        };
        (bytes, c.nocase)
    });
    if rule.dsize.is_some() && rule.flow.only_stream {
        return err("dsize", "inspects single packets, which `flow:only_stream` excludes");
    }
    if rule.flags.is_some() && !matches!(rule.proto, RuleProto::Tcp | RuleProto::Ip) {
        return err("flags", "only valid on tcp (or ip) rules");
    }
    if (rule.itype.is_some() || rule.icode.is_some()) && !matches!(rule.proto, RuleProto::Icmp | RuleProto::Ip) {
        return err(
            if rule.itype.is_some() { "itype" } else { "icode" },
            "only valid on icmp (or ip) rules",
        );
    }
    Ok(())
}

/// Parses every rule of one text, appending to `rules` and `report`.
pub(crate) fn parse_text(
    file: &Path,
    text: &str,
    vars: &Vars,
    classes: &ClassificationTable,
    rules: &mut Vec<Rule>,
    report: &mut LoadReport,
) {
    for (line, rule_text) in logical_lines(text) {
        let origin = Origin {
            file: file.to_path_buf(),
            line,
        };
        match parse_rule(&rule_text, origin, vars, classes) {
            Ok(rule) => {
                rules.push(rule);
                report.loaded += 1;
            }
            Err(e) => {
                report.skipped += 1;
                report.warnings.push(Warning {
                    file: file.to_path_buf(),
                    line,
                    keyword: e.keyword,
                    message: e.message,
                });
            }
        }
    }
}
