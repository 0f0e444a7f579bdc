//! Parser tests: every header form and keyword on valid rules, and the
//! warnings (file, line, keyword) of invalid ones.

use std::io::Write;

use rules::{Action, ClassificationTable, RuleProto, RuleSet, Vars, Warning};

fn vars() -> Vars {
    Vars::with_home_net(["172.17.0.0/16", "fd00::/64"])
}

fn load(text: &str) -> (RuleSet, rules::LoadReport) {
    RuleSet::parse("test.rules", text, &vars(), &ClassificationTable::suricata_default())
}

/// Loads one rule that must parse.
fn ok(rule: &str) -> RuleSet {
    let (set, report) = load(rule);
    assert_eq!(report.skipped, 0, "{rule}: {:?}", report.warnings);
    assert_eq!(set.len(), 1);
    set
}

/// Loads one rule that must be skipped; its warning.
fn bad(rule: &str) -> Warning {
    let (set, report) = load(rule);
    assert_eq!(set.len(), 0, "{rule} loaded");
    assert_eq!((report.loaded, report.skipped), (0, 1));
    report.warnings.into_iter().next().expect("a warning")
}

#[test]
fn header_forms_load() {
    for header in [
        "alert tcp any any -> any any",
        "pass udp any any -> any any",
        "alert ip any any -> any any",
        "alert icmp any any -> any any",
        "alert tcp 10.0.0.1 any -> 10.0.0.0/8 80",
        "alert tcp 2001:db8::1 any -> [2001:db8::/32,fd00::/8] any",
        "alert tcp [10.0.0.0/8,!10.1.0.0/16] any -> any any",
        "alert tcp [[10.0.0.0/8,!10.1.0.0/16],192.168.0.1] any -> any any",
        "alert tcp !10.0.0.1 any -> ![10.0.0.0/8,192.168.0.0/16] any",
        "alert tcp $HOME_NET any -> $EXTERNAL_NET any",
        "alert tcp $EXTERNAL_NET any -> $HTTP_SERVERS $HTTP_PORTS",
        "alert tcp any 1024: -> any :1023",
        "alert tcp any [80,443,8000:8100] -> any ![22,23]",
        "alert tcp any [1:1024,!80] -> any 1:65535",
        "alert tcp any any <> any 80",
        "alert tcp 10.0.0.0/255.0.0.0 any -> any any",
    ] {
        ok(&format!("{header} (msg:\"h\"; sid:1;)"));
    }
}

#[test]
fn header_errors() {
    for (header, what) in [
        ("drop tcp any any -> any any", "unsupported action"),
        ("alert http any any -> any any", "unsupported protocol"),
        ("alert tcp any any <- any any", "invalid direction"),
        ("alert tcp any any -> any", "header must be"),
        ("alert tcp 10.0.0.300 any -> any any", "invalid address"),
        ("alert tcp [10.0.0.1 any -> any any", "unbalanced brackets"),
        ("alert tcp !any any -> any any", "negating `any`"),
        ("alert tcp $NOPE any -> any any", "undefined variable"),
        ("alert tcp any 100:1 -> any any", "start above end"),
        ("alert tcp any 99999 -> any any", "invalid port"),
        ("alert tcp any [] -> any any", "port"),
    ] {
        let w = bad(&format!("{header} (msg:\"h\"; sid:1;)"));
        assert_eq!(w.keyword, None, "{header}");
        assert!(w.message.contains(what), "{header}: {}", w.message);
        assert_eq!(w.line, 1);
    }
}

#[test]
fn var_override_changes_home_net() {
    let mut vars = vars();
    vars.apply_override("HOME_NET=[192.168.50.0/24]").unwrap();
    vars.apply_override("HTTP_PORTS=[80,8080]").unwrap();
    let (set, report) = RuleSet::parse(
        "v.rules",
        "alert tcp $EXTERNAL_NET any -> $HOME_NET $HTTP_PORTS (msg:\"v\"; sid:1;)",
        &vars,
        &ClassificationTable::suricata_default(),
    );
    assert_eq!(report.loaded, 1);
    assert_eq!(set.len(), 1);
}

#[test]
fn metadata_keywords() {
    let set = ok(
        r#"alert tcp any any -> any any (msg:"A \"quoted\"\; msg"; sid:42; rev:7; gid:3; classtype:trojan-activity; reference:url,example.com/x; reference:cve,2024-1; metadata:created_at 2024_01_01, signature_severity Major;)"#,
    );
    let r = &set.rules()[0];
    assert_eq!(&*r.msg, "A \"quoted\"; msg");
    assert_eq!((r.sid, r.rev, r.gid), (42, 7, 3));
    assert_eq!(&*r.classtype.as_ref().unwrap().name, "trojan-activity");
    assert_eq!(r.priority, 1, "the class's priority");
    assert_eq!(r.references, ["url,example.com/x", "cve,2024-1"]);
    assert_eq!(r.metadata, ["created_at 2024_01_01, signature_severity Major"]);
    assert_eq!(r.action, Action::Alert);
    assert_eq!(r.proto, RuleProto::Tcp);

    let set = ok("alert tcp any any -> any any (msg:\"p\"; classtype:trojan-activity; priority:4; sid:1;)");
    assert_eq!(set.rules()[0].priority, 4, "priority overrides the class");
    let set = ok("alert tcp any any -> any any (msg:\"p\"; sid:1;)");
    assert_eq!(set.rules()[0].priority, 3, "the default priority");
    assert_eq!(set.rules()[0].gid, 1);
}

#[test]
fn custom_classification_table() {
    let classes = ClassificationTable::parse("config classification: my-class,My Class,2\n").unwrap();
    let text = "alert tcp any any -> any any (msg:\"c\"; classtype:my-class; sid:1;)\n\
                alert tcp any any -> any any (msg:\"c\"; classtype:trojan-activity; sid:2;)\n";
    let (set, report) = RuleSet::parse("c.rules", text, &vars(), &classes);
    assert_eq!(set.len(), 1);
    assert_eq!(set.rules()[0].priority, 2);
    assert_eq!(report.warnings[0].keyword.as_deref(), Some("classtype"));
    assert_eq!(report.warnings[0].line, 2);
    assert!(report.warnings[0].message.contains("unknown class `trojan-activity`"));
}

#[test]
fn every_option_keyword_parses() {
    for opts in [
        r#"content:"abc"; nocase; offset:2; depth:10;"#,
        r#"content:"a|0d 0a|b|00|"; content:!"zz"; distance:0; within:10;"#,
        r#"content:"x\"y\;z\\w\:"; rawbytes;"#,
        r#"content:"GET"; startswith; content:"HTTP/1.1|0d 0a|"; endswith;"#,
        r#"content:"abc"; content:"longer one"; fast_pattern;"#,
        r#"content:"longer one"; fast_pattern:only;"#,
        r#"content:"longer one"; fast_pattern:3,4;"#,
        r#"content:"a"; distance:-1; within:5;"#,
        r#"content:"abc"; isdataat:4,relative; isdataat:!100;"#,
        r#"pcre:"/^GET\s+\/[a-z]+/ismx";"#,
        r#"content:"a"; pcre:!"/b+c/R";"#,
        r#"byte_test:2,>,0x100,0; byte_test:4,!=,1,2,relative,little; byte_test:3,<=,100,0,string,dec;"#,
        r#"byte_test:2,&,0x8000,0,bitmask 0xff00; byte_test:1,^,1,0; byte_test:2,>=,5,0,string,hex; byte_test:3,=,7,0,string,oct; byte_test:1,!<,5,0;"#,
        r#"byte_jump:2,0; byte_jump:4,1,relative,little,multiplier 2,align,post_offset -3;"#,
        r#"byte_jump:2,0,from_beginning; byte_jump:3,0,string,dec,relative; byte_jump:1,0,from_end,post_offset -4;"#,
        "dsize:10; ttl:<5;",
        "dsize:>10;",
        "dsize:<10;",
        "dsize:10<>20;",
        "dsize:!0;",
        "ttl:>=64;",
        "ttl:<=2;",
        "flags:SA;",
        "flags:S,CE;",
        "flags:+A;",
        "flags:*SF;",
        "flags:!R;",
        "flags:0;",
        "flags:PA+;",
        "flow:to_server,established;",
        "flow:from_client,not_established,stateless;",
        "flow:to_client,only_stream;",
        "flow:from_server,no_stream;",
        "flowbits:set,a; flowbits:isset,b; flowbits:isnotset,c; flowbits:unset,d; flowbits:toggle,e; flowbits:noalert;",
        "flowbits:isset,a|b; flowbits:isnotset,c&d; flowbits:set,e&f;",
        "noalert;",
        "threshold:type limit, track by_src, count 1, seconds 60;",
        "threshold: type threshold, track by_dst, count 10, seconds 5;",
        "threshold: type both, track by_both, count 2, seconds 1;",
        "detection_filter: track by_src, count 5, seconds 30;",
        "detection_filter: track by_rule, count 5, seconds 30;",
    ] {
        ok(&format!("alert tcp any any -> any any (msg:\"k\"; {opts} sid:1;)"));
    }
    for opts in ["itype:8;", "icode:0;", "itype:>3;", "icode:<2;", "itype:3<>9;"] {
        ok(&format!("alert icmp any any -> any any (msg:\"k\"; {opts} sid:1;)"));
    }
}

#[test]
fn fast_pattern_selection() {
    let fp = |opts: &str| {
        let set = ok(&format!("alert tcp any any -> any any (msg:\"f\"; {opts} sid:1;)"));
        set.rules()[0].fast_pattern().map(|(b, n)| (b.to_vec(), n))
    };
    assert_eq!(
        fp(r#"content:"ab"; content:"abcdef";"#),
        Some((b"abcdef".to_vec(), false))
    );
    assert_eq!(
        fp(r#"content:"ab"; fast_pattern; content:"abcdef";"#),
        Some((b"ab".to_vec(), false))
    );
    assert_eq!(fp(r#"content:"ABCDEF"; nocase;"#), Some((b"abcdef".to_vec(), true)));
    assert_eq!(
        fp(r#"content:"abcdef"; fast_pattern:2,3;"#),
        Some((b"cde".to_vec(), false))
    );
    assert_eq!(
        fp(r#"content:!"abcdef";"#),
        None,
        "negated contents are never fast patterns"
    );
    assert_eq!(fp("dsize:5;"), None);
}

#[test]
fn keyword_errors_name_the_keyword() {
    for (opts, keyword, what) in [
        (r#"content:"a"; foo:bar;"#, "foo", "unsupported keyword"),
        (r#"http_uri; content:"a";"#, "http_uri", "unsupported keyword"),
        ("nocase;", "nocase", "must follow a `content`"),
        (r#"content:"";"#, "content", "empty content"),
        (r#"content:abc;"#, "content", "must be quoted"),
        (r#"content:"|4|";"#, "content", "odd number"),
        (r#"content:"|zz|";"#, "content", "invalid hex"),
        (r#"content:"|41";"#, "content", "unterminated"),
        (r#"content:"a\qb";"#, "content", "invalid escape"),
        (r#"content:"abc"; depth:2;"#, "depth", "smaller than"),
        (r#"content:"abc"; within:2;"#, "within", "smaller than"),
        (r#"content:"abc"; offset:x;"#, "offset", "invalid number"),
        (r#"content:"abc"; offset:1; distance:2;"#, "content", "mixed"),
        (r#"content:"abc"; startswith; offset:1;"#, "startswith", "cannot be combined"),
        (r#"content:"abc"; fast_pattern:5,5;"#, "fast_pattern", "outside"),
        (r#"content:"a"; fast_pattern; content:"b"; fast_pattern;"#, "fast_pattern", "more than one"),
        (r#"content:!"a"; fast_pattern;"#, "fast_pattern", "negated"),
        (r#"content:"a"; nocase:1;"#, "nocase", "takes no value"),
        (r#"pcre:"/(a)\1/";"#, "pcre", "backreference"),
        (r#"pcre:"/a(?=b)/";"#, "pcre", "lookahead"),
        (r#"pcre:"/(?<=a)b/";"#, "pcre", "lookbehind"),
        (r#"pcre:"/(?>a)/";"#, "pcre", "atomic"),
        (r#"pcre:"/a*+/";"#, "pcre", "possessive"),
        (r#"pcre:"/a/U";"#, "pcre", "HTTP buffer"),
        (r#"pcre:"/a/Z";"#, "pcre", "unknown pcre flag"),
        (r#"pcre:"/a[/";"#, "pcre", "does not compile"),
        ("byte_test:2,>,1;", "byte_test", "needs bytes"),
        ("byte_test:2,~,1,0;", "byte_test", "unknown operator"),
        ("byte_test:9,>,1,0;", "byte_test", "1 to 8 bytes"),
        ("byte_test:2,>,1,0,dce;", "byte_test", "dce"),
        ("byte_test:2,>,1,0,hex;", "byte_test", "need `string`"),
        ("byte_test:2,>,1,0,string,big;", "byte_test", "endianness"),
        ("byte_test:2,>,1,0,sideways;", "byte_test", "unknown option"),
        ("byte_jump:2;", "byte_jump", "needs bytes"),
        ("byte_jump:2,0,multiplier 0;", "byte_jump", "multiplier"),
        ("byte_jump:2,0,from_beginning,from_end;", "byte_jump", "together"),
        ("byte_jump:2,0,dce;", "byte_jump", "dce"),
        ("isdataat:x;", "isdataat", "invalid number"),
        ("isdataat:1,absolute;", "isdataat", "unknown option"),
        ("dsize:abc;", "dsize", "invalid number"),
        ("dsize:70000;", "dsize", "above"),
        ("dsize:20<>10;", "dsize", "empty range"),
        ("dsize:1; dsize:2;", "dsize", "given twice"),
        ("ttl:300;", "ttl", "above"),
        ("flags:SX;", "flags", "unknown flag"),
        ("flags:+*S;", "flags", "more than one modifier"),
        ("flags:0S;", "flags", "`0`"),
        ("flags:S,Q;", "flags", "mask"),
        ("flow:sideways;", "flow", "unknown option"),
        ("flow:to_server,to_client;", "flow", "contradicts"),
        ("flow:established,not_established;", "flow", "contradicts"),
        ("flow:only_stream,no_stream;", "flow", "together"),
        ("flowbits:set;", "flowbits", "needs a name"),
        ("flowbits:frob,a;", "flowbits", "unknown command"),
        ("flowbits:set,a|b;", "flowbits", "only valid with isset"),
        ("flowbits:isset,a b;", "flowbits", "invalid flowbit name"),
        ("threshold:type limit, track by_src, count 1;", "threshold", "needs type, track, count and seconds"),
        ("threshold:type sometimes, track by_src, count 1, seconds 1;", "threshold", "unknown type"),
        ("threshold:type limit, track by_port, count 1, seconds 1;", "threshold", "unknown track"),
        ("detection_filter:type limit, track by_src, count 1, seconds 1;", "detection_filter", "unknown option"),
        (
            "threshold:type limit, track by_src, count 1, seconds 1; detection_filter:track by_src, count 1, seconds 1;",
            "detection_filter",
            "one threshold",
        ),
        ("sid:0;", "sid", "positive"),
        ("classtype:no-such-class;", "classtype", "unknown class"),
        ("priority:0;", "priority", "1 to 255"),
        ("itype:8;", "itype", "only valid on icmp"),
        ("msg:\"unterminated", "msg", "unterminated quote"),
    ] {
        let w = bad(&format!("alert tcp any any -> any any (msg:\"k\"; {opts} sid:1;)"));
        assert_eq!(w.keyword.as_deref(), Some(keyword), "{opts}: {w}");
        assert!(w.message.contains(what), "{opts}: {w}");
        assert_eq!(w.file.to_str(), Some("test.rules"));
        assert!(w.to_string().starts_with(&format!("test.rules:1: keyword `{keyword}`")), "{w}");
    }
}

#[test]
fn syntax_errors() {
    for (rule, what) in [
        ("alert tcp any any -> any any msg:\"x\"; sid:1;", "missing `(`"),
        ("alert tcp any any -> any any (msg:\"x\"; sid:1;", "missing closing"),
        (
            "alert tcp any any -> any any (msg:\"x\"; sid:1;) junk",
            "unexpected text",
        ),
        ("alert tcp any any -> any any (msg:\"x\";)", "missing `sid`"),
        (
            "alert tcp any any -> any any (msg:\"x\"; bad name:1; sid:1;)",
            "invalid option",
        ),
    ] {
        let w = bad(rule);
        assert!(w.message.contains(what), "{rule}: {w}");
    }
    // An option missing its `;` names itself.
    let w = bad("alert tcp any any -> any any (msg:\"x\"; sid:1)");
    assert_eq!(w.keyword.as_deref(), Some("sid"));
}

#[test]
fn continuations_comments_and_line_numbers() {
    let text = "# a comment\n\
                \n\
                alert tcp any any -> any any (msg:\"one\"; \\\n\
                    content:\"abc\"; \\\n\
                    sid:1;)\n\
                # alert tcp any any -> any any (msg:\"disabled\"; sid:9;)\n\
                alert tcp any any -> any any (msg:\"two\"; \\\n\
                    bogus; sid:2;)\n\
                alert tcp any any -> any any (msg:\"three\"; sid:3;)\n\
                alert tcp any any -> any any (msg:\"dup\"; sid:3; rev:1;)\n";
    let (set, report) = load(text);
    assert_eq!(set.len(), 2);
    assert_eq!((report.loaded, report.skipped), (2, 2));
    assert_eq!(report.warnings[0].line, 7);
    assert_eq!(report.warnings[0].keyword.as_deref(), Some("bogus"));
    // The duplicate with the higher rev stays; the older one is reported.
    assert_eq!(report.warnings[1].keyword.as_deref(), Some("sid"));
    assert_eq!(report.warnings[1].line, 9);
    assert!(report.warnings[1].message.contains("duplicate"));
    let three = set.rules().iter().find(|r| r.sid == 3).unwrap();
    assert_eq!((&*three.msg, three.rev), ("dup", 1));
    assert_eq!(set.rules().iter().find(|r| r.sid == 1).unwrap().origin.line, 3);
}

#[test]
fn files_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.rules");
    let b = dir.path().join("b.rules");
    std::fs::File::create(&a)
        .unwrap()
        .write_all(b"alert tcp any any -> any any (msg:\"a\"; sid:1;)\n")
        .unwrap();
    std::fs::File::create(&b)
        .unwrap()
        .write_all(b"\nalert tcp any any -> any any (msg:\"b\"; nope; sid:2;)\n")
        .unwrap();
    let (set, report) = RuleSet::load(&[&a, &b], &vars()).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(report.warnings[0].file, b);
    assert_eq!(report.warnings[0].line, 2);
    let missing = dir.path().join("missing.rules");
    let err = RuleSet::load(&[&a, &missing], &vars()).unwrap_err();
    assert_eq!(err.path, missing);
    assert!(err.to_string().contains("missing.rules"));
}

#[test]
fn pass_rules_are_ordered_first() {
    let (set, _) = load(
        "alert tcp any any -> any any (msg:\"a\"; sid:1;)\n\
         alert tcp any any -> any any (msg:\"reader\"; flowbits:isset,x; sid:2;)\n\
         alert tcp any any -> any any (msg:\"setter\"; flowbits:set,x; sid:3;)\n\
         pass tcp any any -> any any (msg:\"p\"; sid:4;)\n",
    );
    let order: Vec<u32> = set.rules().iter().map(|r| r.sid).collect();
    assert_eq!(order, [4, 3, 2, 1]);
}
