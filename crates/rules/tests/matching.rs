//! Packet matching tests: crafted packets against every keyword, the
//! header forms, pass rules, thresholds and flowbits, and the fields a
//! match carries.

use std::net::IpAddr;
use std::time::Duration;

use rules::{
    Action, ClassificationTable, Detector, DetectorConfig, Direction, FlowState, Packet, Protocol, RuleSet, Vars,
    Verdict,
};

fn set(text: &str) -> RuleSet {
    let (set, report) = RuleSet::parse(
        "m.rules",
        text,
        &Vars::with_home_net(["172.17.0.0/16", "fd00::/64"]),
        &ClassificationTable::suricata_default(),
    );
    assert_eq!(report.skipped, 0, "{:?}", report.warnings);
    set
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP packet 10.0.0.1:40000 -> 172.17.0.2:80, to_server, established,
/// flags PA, adjusted by `f`.
fn run(
    set: &RuleSet,
    det: &mut Detector,
    flow: &mut FlowState,
    payload: &[u8],
    f: impl FnOnce(&mut Packet),
) -> Verdict {
    let mut p = Packet::new(Protocol::Tcp, ip("10.0.0.1"), ip("172.17.0.2"), payload, flow);
    p.src_port = 40000;
    p.dst_port = 80;
    p.tcp_flags = 0x18;
    p.direction = Some(Direction::ToServer);
    p.established = true;
    f(&mut p);
    set.match_packet(det, &mut p)
}

fn sids(v: &Verdict) -> Vec<u32> {
    v.alerts.iter().map(|m| m.sid).collect()
}

/// The sids alerting on `payload` with default packet fields.
fn on(set: &RuleSet, payload: &[u8]) -> Vec<u32> {
    sids(&run(
        set,
        &mut Detector::default(),
        &mut FlowState::new(),
        payload,
        |_| {},
    ))
}

/// One rule with `opts`: whether it alerts on `payload`.
fn hit(opts: &str, payload: &[u8]) -> bool {
    let s = set(&format!("alert tcp any any -> any any (msg:\"t\"; {opts} sid:1;)"));
    !on(&s, payload).is_empty()
}

#[test]
fn content_and_modifiers() {
    assert!(hit(r#"content:"admin";"#, b"GET /admin HTTP/1.1"));
    assert!(!hit(r#"content:"ADMIN";"#, b"GET /admin HTTP/1.1"));
    assert!(hit(r#"content:"ADMIN"; nocase;"#, b"GET /aDmIn HTTP/1.1"));
    assert!(hit(r#"content:"|47 45|T";"#, b"GET /"));
    assert!(hit(r#"content:"a\;b";"#, b"xa;b"));
    assert!(hit(r#"content:"GET"; content:!"POST";"#, b"GET /"));
    assert!(!hit(r#"content:"GET"; content:!"POST";"#, b"GET /POST"));
    assert!(hit(r#"content:"GET"; rawbytes;"#, b"GET /"));
    // offset / depth
    assert!(hit(r#"content:"/a"; offset:4; depth:2;"#, b"GET /a"));
    assert!(!hit(r#"content:"/a"; offset:5;"#, b"GET /a"));
    assert!(!hit(r#"content:"/a"; depth:5;"#, b"GET /a"));
    // distance / within
    assert!(hit(r#"content:"GET"; content:"HTTP"; distance:0;"#, b"GET / HTTP"));
    assert!(!hit(r#"content:"HTTP"; content:"GET"; distance:0;"#, b"GET / HTTP"));
    assert!(hit(
        r#"content:"GET"; content:"/"; distance:1; within:1;"#,
        b"GET / HTTP"
    ));
    assert!(!hit(
        r#"content:"GET"; content:"/"; distance:2; within:1;"#,
        b"GET / HTTP"
    ));
    assert!(hit(r#"content:"ab"; content:"a"; distance:-2; within:1;"#, b"xxab"));
    assert!(!hit(r#"content:"GET"; content:"HTTP"; within:6;"#, b"GET / HTTP"));
    assert!(hit(r#"content:"GET"; content:"HTTP"; within:7;"#, b"GET / HTTP"));
    // Relative negated content: absent right after.
    assert!(hit(r#"content:"a"; content:!"b"; within:1;"#, b"ab ac"));
    // startswith / endswith
    assert!(hit(r#"content:"GET"; startswith;"#, b"GET /"));
    assert!(!hit(r#"content:"GET"; startswith;"#, b" GET /"));
    assert!(hit(r#"content:"1.1"; endswith;"#, b"HTTP/1.1 1.1"));
    assert!(!hit(r#"content:"1.1"; endswith;"#, b"HTTP/1.1 "));
    // fast_pattern slice: the prefilter uses a part, the whole is verified.
    assert!(hit(r#"content:"evil.exe"; fast_pattern:0,4;"#, b"get evil.exe"));
    assert!(!hit(r#"content:"evil.exe"; fast_pattern:0,4;"#, b"get evil.com"));
    assert!(hit(r#"content:"evil"; fast_pattern:only;"#, b"get evil"));
}

#[test]
fn backtracking_retries_earlier_contents() {
    // The first "a" is not followed by "b"; the second is.
    assert!(hit(r#"content:"a"; content:"b"; distance:0; within:1;"#, b"a x ab"));
    // Three levels: the chain needs the third "x".
    assert!(hit(
        r#"content:"x"; content:"y"; distance:0; within:1; content:"z"; distance:0; within:1;"#,
        b"xy xyq xyz"
    ));
    assert!(!hit(
        r#"content:"x"; content:"y"; distance:0; within:1; content:"z"; distance:0; within:1;"#,
        b"xy xyq xzy"
    ));
    // Backtracking into a pcre.
    assert!(hit(r#"pcre:"/a./"; content:"!"; distance:0; within:1;"#, b"ab ac!"));
}

#[test]
fn inspection_limit_caps_backtracking() {
    let payload = vec![b'a'; 4000];
    let s = set(
        r#"alert tcp any any -> any any (msg:"t"; content:"a"; content:"a"; distance:0; within:1; content:"b"; distance:0; sid:1;)"#,
    );
    let mut det = Detector::new(DetectorConfig {
        inspection_limit: 100,
        ..DetectorConfig::default()
    });
    let v = run(&s, &mut det, &mut FlowState::new(), &payload, |_| {});
    assert!(v.alerts.is_empty());
    assert_eq!(det.stats().inspection_limit_hits, 1);
}

#[test]
fn isdataat() {
    assert!(hit("isdataat:4;", b"12345"));
    assert!(!hit("isdataat:5;", b"12345"));
    assert!(hit("isdataat:!5;", b"12345"));
    assert!(hit(r#"content:"12"; isdataat:3,relative;"#, b"12345"));
    assert!(!hit(r#"content:"12"; isdataat:4,relative;"#, b"12345"));
    assert!(hit(r#"content:"45"; isdataat:!1,relative;"#, b"12345"));
}

#[test]
fn pcre() {
    assert!(hit(r#"pcre:"/^GET \/[a-z]+\.php/";"#, b"GET /index.php"));
    assert!(!hit(r#"pcre:"/^GET \/[a-z]+\.php/";"#, b"POST /index.php"));
    assert!(hit(r#"pcre:"/^get/i";"#, b"GET /"));
    assert!(hit(r#"pcre:"/a.b/s";"#, b"a\nb"));
    assert!(!hit(r#"pcre:"/a.b/";"#, b"a\nb"));
    assert!(hit(r#"pcre:"/^Host: x$/m";"#, b"GET /\r\nHost: x\nA: b"));
    assert!(hit(r#"pcre:"/ G E T /x";"#, b"GET"));
    assert!(hit(r#"pcre:!"/POST/";"#, b"GET"));
    assert!(!hit(r#"pcre:!"/GET/";"#, b"GET"));
    assert!(hit(r#"pcre:"/\x00\xff/";"#, b"a\x00\xffb"));
    // R: relative to the previous match; `^` anchors at the cursor.
    assert!(hit(r#"content:"GET "; pcre:"/^\/admin/R";"#, b"GET /admin"));
    assert!(!hit(r#"content:"GET "; pcre:"/^\/admin/R";"#, b"GET /x/admin"));
    assert!(!hit(r#"content:"admin"; pcre:"/GET/R";"#, b"GET /admin"));
    // A: anchored at the search start.
    assert!(hit(r#"content:"GET "; pcre:"/\/adm/AR";"#, b"GET /admin"));
    assert!(!hit(r#"pcre:"/\/adm/A";"#, b"GET /admin"));
    // Content relative to a pcre match.
    assert!(hit(
        r#"pcre:"/id=[0-9]+/"; content:"&"; distance:0; within:1;"#,
        b"?id=42&x"
    ));
}

#[test]
fn byte_test() {
    let p = b"\x01\x02\x03\x04 123 0x1f";
    assert!(hit("byte_test:2,=,0x0102,0;", p));
    assert!(hit("byte_test:2,=,0x0201,0,little;", p));
    assert!(hit("byte_test:2,>,0x0101,0;", p));
    assert!(!hit("byte_test:2,>,0x0102,0;", p));
    assert!(hit("byte_test:2,<,0x0103,0;", p));
    assert!(hit("byte_test:2,<=,0x0102,0;", p));
    assert!(hit("byte_test:2,>=,0x0102,0;", p));
    assert!(hit("byte_test:2,!=,5,0;", p));
    assert!(!hit("byte_test:2,!=,0x0102,0;", p));
    assert!(hit("byte_test:1,&,0x01,0;", p));
    assert!(!hit("byte_test:1,&,0x02,0;", p));
    assert!(hit("byte_test:1,^,0x00,0;", p));
    assert!(!hit("byte_test:1,^,0x01,0;", p));
    assert!(hit("byte_test:1,!>,1,0;", p));
    assert!(hit("byte_test:3,=,123,5,string,dec;", p));
    assert!(hit("byte_test:2,=,0x1f,11,string,hex;", p));
    assert!(hit("byte_test:3,=,83,5,string,oct;", p));
    assert!(hit("byte_test:2,=,0x02,0,bitmask 0x00ff;", p));
    assert!(hit("byte_test:2,=,0x01,0,bitmask 0xff00;", p));
    // Relative to a content; out of range never matches.
    assert!(hit(r#"content:"|02|"; byte_test:1,=,3,0,relative;"#, p));
    assert!(hit(r#"content:"|02|"; byte_test:1,=,4,1,relative;"#, p));
    assert!(!hit("byte_test:4,>,0,100;", p));
    assert!(!hit(r#"content:"0x1f"; byte_test:1,>,0,0,relative;"#, p));
}

#[test]
fn byte_jump() {
    // Length-prefixed records: 2-byte length 3, "abc", then "XY".
    let p = b"\x00\x03abcXY";
    assert!(hit(r#"byte_jump:2,0; content:"XY"; within:2;"#, p));
    assert!(!hit(r#"byte_jump:2,0; content:"ab"; within:2;"#, p));
    assert!(hit(r#"byte_jump:2,0; isdataat:!3,relative;"#, p));
    assert!(hit(r#"byte_jump:2,0,post_offset -3; content:"abc"; within:3;"#, p));
    // Multiplier and align: 0x0001 * 2 = 2 -> align 4.
    let p = b"\x00\x01....!";
    assert!(hit(r#"byte_jump:2,0,multiplier 2; content:".."; within:2;"#, p));
    assert!(hit(r#"byte_jump:2,0,multiplier 2,align; content:"!"; within:1;"#, p));
    // Relative, little endian, from_beginning, from_end, string.
    let p = b"HDR\x04\x00body!";
    assert!(hit(
        r#"content:"HDR"; byte_jump:2,0,relative,little; content:"!"; within:1;"#,
        p
    ));
    assert!(hit(
        r#"content:"HDR"; byte_jump:1,0,relative,from_beginning; content:"|00|"; within:1;"#,
        p
    ));
    assert!(hit(
        r#"byte_jump:1,0,from_end,post_offset -5; content:"body"; within:4;"#,
        b"\x00body!"
    ));
    assert!(hit(r#"byte_jump:2,0,string,dec; content:"Z"; within:1;"#, b"03abcZ"));
    // Past the end: no match.
    assert!(!hit("byte_jump:2,0;", b"\x00\x09abc"));
}

#[test]
fn dsize_ttl_flags() {
    assert!(hit("dsize:5;", b"12345"));
    assert!(!hit("dsize:5;", b"1234"));
    assert!(hit("dsize:<5;", b"1234"));
    assert!(hit("dsize:>3;", b"1234"));
    assert!(hit("dsize:3<>5;", b"1234"));
    assert!(!hit("dsize:4<>5;", b"1234"));
    assert!(hit("dsize:!3;", b"1234"));
    assert!(hit("dsize:0;", b""));
    let s = set("alert tcp any any -> any any (msg:\"t\"; ttl:<10; sid:1;)\n\
                 alert tcp any any -> any any (msg:\"t\"; ttl:64; sid:2;)\n\
                 alert tcp any any -> any any (msg:\"t\"; ttl:60<>70; sid:3;)\n\
                 alert tcp any any -> any any (msg:\"t\"; ttl:>=64; sid:4;)");
    let mut det = Detector::default();
    assert_eq!(
        sids(&run(&s, &mut det, &mut FlowState::new(), b"", |p| p.ttl = 64)),
        [2, 3, 4]
    );
    assert_eq!(sids(&run(&s, &mut det, &mut FlowState::new(), b"", |p| p.ttl = 3)), [1]);

    let flags = |opts: &str, f: u8| {
        let s = set(&format!(
            "alert tcp any any -> any any (msg:\"t\"; flags:{opts}; sid:1;)"
        ));
        !run(&s, &mut Detector::default(), &mut FlowState::new(), b"", |p| {
            p.tcp_flags = f
        })
        .alerts
        .is_empty()
    };
    const F: u8 = 0x01;
    const S: u8 = 0x02;
    const R: u8 = 0x04;
    const P: u8 = 0x08;
    const A: u8 = 0x10;
    const E: u8 = 0x40;
    const C: u8 = 0x80;
    assert!(flags("S", S));
    assert!(!flags("S", S | A));
    assert!(flags("SA", S | A));
    assert!(flags("S,CE", S | C | E));
    assert!(!flags("S", S | C | E));
    assert!(flags("+A", P | A));
    assert!(!flags("+A", P));
    assert!(flags("A+", P | A));
    assert!(flags("*SF", F));
    assert!(!flags("*SF", A));
    assert!(flags("!R", A));
    assert!(!flags("!R", R | A));
    assert!(flags("0", 0));
    assert!(!flags("0", A));
    assert!(flags("12", C | E));
    // Not on UDP.
    let s = set("alert ip any any -> any any (msg:\"t\"; flags:S; sid:1;)");
    assert!(run(&s, &mut Detector::default(), &mut FlowState::new(), b"", |p| {
        p.proto = Protocol::Udp;
        p.tcp_flags = S;
    })
    .alerts
    .is_empty());
}

#[test]
fn icmp_type_and_code() {
    let s = set(
        "alert icmp any any -> any any (msg:\"echo\"; itype:8; icode:0; sid:1;)\n\
                 alert icmp any any -> any any (msg:\"unreach\"; itype:3; icode:>1; sid:2;)\n\
                 alert icmp any any -> any any (msg:\"range\"; itype:<5; sid:3;)\n\
                 alert icmp any any -> any any (msg:\"range2\"; itype:127<>129; sid:4;)",
    );
    let icmp = |t: u8, c: u8, proto: Protocol| {
        sids(&run(&s, &mut Detector::default(), &mut FlowState::new(), b"", |p| {
            p.proto = proto;
            p.icmp_type = t;
            p.icmp_code = c;
        }))
    };
    assert_eq!(icmp(8, 0, Protocol::Icmp), [1]);
    assert_eq!(icmp(3, 3, Protocol::Icmp), [2, 3]);
    assert_eq!(icmp(3, 1, Protocol::Icmp), [3]);
    assert_eq!(icmp(128, 0, Protocol::Icmpv6), [4], "icmp rules match ICMPv6");
    assert_eq!(icmp(8, 0, Protocol::Tcp), Vec::<u32>::new());
}

#[test]
fn header_addresses_ports_direction() {
    let s = set("alert tcp $EXTERNAL_NET any -> $HOME_NET 80 (msg:\"in\"; sid:1;)\n\
         alert tcp $HOME_NET any -> any any (msg:\"from home\"; sid:2;)\n\
         alert tcp any any <> 172.17.0.2 [80,443] (msg:\"bidir\"; sid:3;)\n\
         alert tcp [10.0.0.0/8,!10.0.0.1] any -> any any (msg:\"neg\"; sid:4;)\n\
         alert tcp any ![1:1024] -> any :100 (msg:\"ports\"; sid:5;)\n\
         alert udp any any -> any 53 (msg:\"dns\"; sid:6;)\n\
         alert ip any any -> fd00::/64 any (msg:\"v6\"; sid:7;)");
    let mut det = Detector::default();
    let mut go = |f: &dyn Fn(&mut Packet)| sids(&run(&s, &mut det, &mut FlowState::new(), b"", f));
    assert_eq!(go(&|_| {}), [1, 3, 5]);
    // The reply: from home, and bidirectional.
    assert_eq!(
        go(&|p| {
            std::mem::swap(&mut p.src, &mut p.dst);
            std::mem::swap(&mut p.src_port, &mut p.dst_port);
        }),
        [2, 3]
    );
    assert_eq!(go(&|p| p.src = ip("10.0.0.7")), [1, 3, 4, 5]);
    assert_eq!(go(&|p| p.src = ip("10.9.9.9")), [1, 3, 4, 5]);
    assert_eq!(go(&|p| p.dst_port = 443), [3]);
    assert_eq!(
        go(&|p| {
            p.proto = Protocol::Udp;
            p.dst_port = 53;
        }),
        [6]
    );
    assert_eq!(
        go(&|p| {
            p.src = ip("2001:db8::1");
            p.dst = ip("fd00::5");
        }),
        [1, 5, 7]
    );
    // ICMP has no ports: rules with ports do not match it.
    let s = set("alert ip any any -> any 80 (msg:\"p\"; sid:1;)\nalert ip any any -> any any (msg:\"a\"; sid:2;)");
    assert_eq!(
        sids(&run(&s, &mut det, &mut FlowState::new(), b"", |p| p.proto = Protocol::Icmp)),
        [2]
    );
}

#[test]
fn flow_keyword() {
    let s = set("alert tcp any any -> any any (msg:\"ts\"; flow:to_server; sid:1;)\n\
         alert tcp any any -> any any (msg:\"tc\"; flow:to_client; sid:2;)\n\
         alert tcp any any -> any any (msg:\"est\"; flow:established,from_client; sid:3;)\n\
         alert tcp any any -> any any (msg:\"not est\"; flow:not_established; sid:4;)\n\
         alert tcp any any -> any any (msg:\"stateless\"; flow:stateless; sid:5;)");
    let mut det = Detector::default();
    let mut go = |f: &dyn Fn(&mut Packet)| sids(&run(&s, &mut det, &mut FlowState::new(), b"", f));
    assert_eq!(go(&|_| {}), [1, 3, 5]);
    assert_eq!(go(&|p| p.direction = Some(Direction::ToClient)), [2, 5]);
    assert_eq!(go(&|p| p.established = false), [1, 4, 5]);
    assert_eq!(go(&|p| p.direction = None), [5]);
}

#[test]
fn flowbits_across_packets() {
    let s = set(
        "alert tcp any any -> any any (msg:\"login\"; content:\"USER\"; flowbits:set,logged_in; flowbits:noalert; sid:1;)\n\
         alert tcp any any -> any any (msg:\"cmd after login\"; content:\"RETR\"; flowbits:isset,logged_in; sid:2;)\n\
         alert tcp any any -> any any (msg:\"cmd before login\"; content:\"RETR\"; flowbits:isnotset,logged_in; sid:3;)\n\
         alert tcp any any -> any any (msg:\"logout\"; content:\"QUIT\"; flowbits:unset,logged_in; noalert; sid:4;)\n\
         alert tcp any any -> any any (msg:\"toggle\"; content:\"TGL\"; flowbits:toggle,t; noalert; sid:5;)\n\
         alert tcp any any -> any any (msg:\"any of\"; content:\"CHK\"; flowbits:isset,t|logged_in; sid:6;)\n\
         alert tcp any any -> any any (msg:\"all of\"; content:\"CHK\"; flowbits:isset,t&logged_in; sid:7;)",
    );
    let mut det = Detector::default();
    let mut flow = FlowState::new();
    let mut go = |payload: &[u8]| sids(&run(&s, &mut det, &mut flow, payload, |_| {}));
    assert_eq!(go(b"RETR a"), [3]);
    assert_eq!(go(b"USER bob"), Vec::<u32>::new(), "noalert");
    assert_eq!(go(b"RETR a"), [2]);
    assert_eq!(go(b"CHK"), [6]);
    assert_eq!(go(b"TGL"), Vec::<u32>::new());
    assert_eq!(go(b"CHK"), [6, 7]);
    assert_eq!(go(b"QUIT"), Vec::<u32>::new());
    assert_eq!(go(b"CHK"), [6]);
    assert_eq!(go(b"TGL"), Vec::<u32>::new());
    assert_eq!(go(b"CHK"), Vec::<u32>::new());
    assert_eq!(go(b"RETR a"), [3]);
    // Setters run before readers in one packet.
    let s = set(
        "alert tcp any any -> any any (msg:\"reader\"; content:\"X\"; flowbits:isset,b; sid:1;)\n\
         alert tcp any any -> any any (msg:\"setter\"; content:\"X\"; flowbits:set,b; sid:2;)",
    );
    let mut flow = FlowState::new();
    assert_eq!(
        sids(&run(&s, &mut Detector::default(), &mut flow, b"X", |_| {})),
        [2, 1]
    );
    assert!(flow.is_set("b"));
    assert_eq!(flow.bits().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn pass_suppresses_alerts() {
    let s = set("alert tcp any any -> any any (msg:\"a\"; content:\"evil\"; sid:1;)\n\
         pass tcp 10.0.0.5 any -> any any (msg:\"trusted\"; sid:2;)\n\
         alert tcp any any -> any any (msg:\"b\"; content:\"evil\"; flowbits:set,seen; sid:3;)");
    let mut det = Detector::default();
    let mut flow = FlowState::new();
    let v = run(&s, &mut det, &mut flow, b"evil", |_| {});
    assert_eq!(sids(&v), [3, 1]);
    assert!(v.pass.is_none());
    let mut flow = FlowState::new();
    let v = run(&s, &mut det, &mut flow, b"evil", |p| p.src = ip("10.0.0.5"));
    assert!(v.alerts.is_empty());
    let pass = v.pass.unwrap();
    assert_eq!((pass.sid, pass.action), (2, Action::Pass));
    assert!(!flow.is_set("seen"), "rules after the pass are not evaluated");
    assert_eq!(det.stats().passed, 1);
}

#[test]
fn match_fields() {
    let s = set(
        r#"alert tcp any any -> any any (msg:"Trojan beacon"; content:"beacon"; classtype:trojan-activity; sid:2000001; rev:3; gid:1;)"#,
    );
    let v = run(&s, &mut Detector::default(), &mut FlowState::new(), b"a beacon", |_| {});
    let m = &v.alerts[0];
    assert_eq!((m.sid, m.gid, m.rev, m.priority), (2000001, 1, 3, 1));
    assert_eq!(&*m.msg, "Trojan beacon");
    assert_eq!(m.classtype.as_deref(), Some("trojan-activity"));
    assert_eq!(m.class_description.as_deref(), Some("A Network Trojan was detected"));
    assert_eq!(m.action, Action::Alert);
    assert_eq!(m.stream_offset, None);
}

#[test]
fn threshold_and_detection_filter() {
    let s = set(
        "alert tcp any any -> any any (msg:\"limit\"; content:\"L\"; threshold:type limit, track by_src, count 2, seconds 60; sid:1;)\n\
         alert tcp any any -> any any (msg:\"df\"; content:\"D\"; detection_filter:track by_dst, count 2, seconds 60; sid:2;)\n\
         alert tcp any any -> any any (msg:\"thr\"; content:\"T\"; threshold:type threshold, track by_rule, count 3, seconds 60; sid:3;)",
    );
    let mut det = Detector::default();
    let mut go = |payload: &[u8], src: &str, t: u64| {
        let v = run(&s, &mut det, &mut FlowState::new(), payload, |p| {
            p.src = ip(src);
            p.timestamp = Duration::from_secs(t);
        });
        (v.alerts.len(), v.suppressed)
    };
    assert_eq!(go(b"L", "10.0.0.1", 0), (1, 0));
    assert_eq!(go(b"L", "10.0.0.1", 1), (1, 0));
    assert_eq!(go(b"L", "10.0.0.1", 2), (0, 1));
    assert_eq!(go(b"L", "10.0.0.2", 2), (1, 0), "tracked by source");
    assert_eq!(go(b"L", "10.0.0.1", 100), (1, 0), "a new window");
    assert_eq!(go(b"D", "10.0.0.1", 0), (0, 1));
    assert_eq!(go(b"D", "10.0.0.2", 0), (0, 1));
    assert_eq!(
        go(b"D", "10.0.0.3", 0),
        (1, 0),
        "tracked by destination: the third match"
    );
    assert_eq!(go(b"T", "10.0.0.1", 0), (0, 1));
    assert_eq!(go(b"T", "10.0.0.2", 0), (0, 1));
    assert_eq!(go(b"T", "10.0.0.3", 0), (1, 0));
    assert_eq!(det.stats().suppressed, 5);
}

#[test]
fn prefilter_candidates() {
    // Many rules: only the matching one alerts; rules without content are
    // always candidates; nocase fast patterns match any case; the same
    // fast pattern shared by two rules yields both.
    let mut text = String::new();
    for i in 0..500 {
        text.push_str(&format!(
            "alert tcp any any -> any any (msg:\"r{i}\"; content:\"/path/{i:04}\"; sid:{};)\n",
            i + 1
        ));
    }
    text.push_str("alert tcp any any -> any any (msg:\"nc\"; content:\"SeLeCt\"; nocase; sid:1001;)\n");
    text.push_str("alert tcp any any -> any any (msg:\"hdr\"; dsize:>0; sid:1002;)\n");
    text.push_str("alert tcp any any -> any any (msg:\"shared\"; content:\"/path/0007\"; content:\"x\"; sid:1003;)\n");
    text.push_str("alert udp any any -> any any (msg:\"udp\"; content:\"/path\"; sid:1004;)\n");
    let s = set(&text);
    assert_eq!(on(&s, b"GET /path/0042 HTTP/1.1"), [43, 1002]);
    assert_eq!(on(&s, b"GET /?q=select * HTTP/1.1"), [1001, 1002]);
    assert_eq!(on(&s, b"GET /path/0007x"), [8, 1002, 1003]);
    let mut det = Detector::default();
    run(&s, &mut det, &mut FlowState::new(), b"GET /nothing", |_| {});
    assert_eq!(det.stats().candidates, 1, "only the rule without content was evaluated");
}

#[test]
fn stream_covered_rules_skip_packet_payload() {
    let s = set(
        "alert tcp any any -> any any (msg:\"payload\"; content:\"x\"; sid:1;)\n\
         alert tcp any any -> any any (msg:\"packet only\"; content:\"x\"; flow:no_stream; sid:2;)\n\
         alert tcp any any -> any any (msg:\"dsize\"; content:\"x\"; dsize:1; sid:3;)\n\
         alert tcp any any -> any any (msg:\"header\"; flags:PA; sid:4;)\n\
         alert tcp any any -> any any (msg:\"stream only\"; content:\"x\"; flow:only_stream; sid:5;)",
    );
    let mut det = Detector::default();
    assert_eq!(
        sids(&run(&s, &mut det, &mut FlowState::new(), b"x", |_| {})),
        [1, 2, 3, 4]
    );
    assert_eq!(
        sids(&run(&s, &mut det, &mut FlowState::new(), b"x", |p| p
            .payload_in_stream =
            true)),
        [2, 3, 4]
    );
}

#[test]
fn empty_payload_never_matches_payload_rules() {
    assert!(!hit(r#"content:!"x";"#, b""));
    assert!(hit(r#"content:!"x";"#, b"y"));
}

#[test]
fn flow_from_server_is_to_client() {
    let s = set("alert tcp any any -> any any (msg:\"fs\"; flow:from_server; sid:6;)\n\
         alert tcp any any -> any any (msg:\"fs est\"; flow:from_server,established; sid:7;)");
    let mut det = Detector::default();
    let mut go = |f: &dyn Fn(&mut Packet)| sids(&run(&s, &mut det, &mut FlowState::new(), b"", f));
    assert_eq!(go(&|_| {}), Vec::<u32>::new(), "to the server");
    assert_eq!(go(&|p| p.direction = Some(Direction::ToClient)), [6, 7]);
    assert_eq!(
        go(&|p| {
            p.direction = Some(Direction::ToClient);
            p.established = false;
        }),
        [6]
    );
    assert_eq!(go(&|p| p.direction = None), Vec::<u32>::new(), "no known direction");
}

#[test]
fn threshold_both_tracked_by_both() {
    let s = set(
        "alert tcp any any -> any any (msg:\"both\"; content:\"B\"; threshold:type both, track by_both, count 2, seconds 60; sid:1;)",
    );
    let mut det = Detector::default();
    let mut go = |src: &str, dst: &str, t: u64| {
        let v = run(&s, &mut det, &mut FlowState::new(), b"B", |p| {
            p.src = ip(src);
            p.dst = ip(dst);
            p.timestamp = Duration::from_secs(t);
        });
        (v.alerts.len(), v.suppressed)
    };
    let (a, x, b, y) = ("10.0.0.1", "172.17.0.2", "10.0.0.2", "172.17.0.3");
    assert_eq!(go(a, x, 0), (0, 1));
    assert_eq!(go(a, x, 1), (1, 0), "the second match of the pair alerts");
    assert_eq!(go(a, x, 2), (0, 1), "once per window");
    assert_eq!(go(b, x, 3), (0, 1), "another source is another pair");
    assert_eq!(go(a, y, 4), (0, 1), "another destination is another pair");
    assert_eq!(go(b, x, 5), (1, 0));
    assert_eq!(go(a, y, 6), (1, 0));
    assert_eq!(go(a, x, 100), (0, 1), "a new window counts again");
    assert_eq!(go(a, x, 101), (1, 0));
}

#[test]
fn gid_and_priority_reach_the_match() {
    let s = set(
        r#"alert tcp any any -> any any (msg:"custom"; content:"x"; classtype:trojan-activity; priority:4; gid:3; sid:9; rev:2;)"#,
    );
    let v = run(&s, &mut Detector::default(), &mut FlowState::new(), b"x", |_| {});
    let m = &v.alerts[0];
    assert_eq!((m.gid, m.sid, m.rev), (3, 9, 2));
    assert_eq!(m.priority, 4, "priority overrides the classtype's (1)");
    assert_eq!(m.class_description.as_deref(), Some("A Network Trojan was detected"));
}
