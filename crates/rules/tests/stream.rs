//! Stream tests: reassembly (in order, out of order, retransmissions,
//! overlaps, depth, memory cap) and stream matching (content split across
//! segments matches once, never re-reported).

use std::net::IpAddr;

use rules::{
    ClassificationTable, Detector, DetectorConfig, Direction, FlowState, Packet, Protocol, RuleSet, StreamAnomaly,
    StreamConfig, StreamReassembler, Vars,
};

fn set(text: &str) -> RuleSet {
    let (set, report) = RuleSet::parse(
        "s.rules",
        text,
        &Vars::with_home_net(["172.17.0.0/16"]),
        &ClassificationTable::suricata_default(),
    );
    assert_eq!(report.skipped, 0, "{:?}", report.warnings);
    set
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Scans the stream's new data; the (sid, stream offset) of each alert.
fn scan(set: &RuleSet, det: &mut Detector, stream: &mut StreamReassembler) -> Vec<(u32, u64)> {
    let mut flow = FlowState::new();
    let mut p = Packet::new(Protocol::Tcp, ip("10.0.0.1"), ip("172.17.0.2"), b"", &mut flow);
    p.src_port = 40000;
    p.dst_port = 80;
    p.direction = Some(Direction::ToServer);
    p.established = true;
    p.payload_in_stream = true;
    set.match_stream(det, &mut p, stream)
        .alerts
        .iter()
        .map(|m| (m.sid, m.stream_offset.unwrap()))
        .collect()
}

const ADMIN: &str = r#"alert tcp any any -> any any (msg:"admin"; content:"/admin"; sid:1;)"#;

#[test]
fn content_split_across_segments_matches_once() {
    let s = set(ADMIN);
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 1000);
    assert_eq!(st.insert(1000, b"GET /ad").new_bytes, 7);
    assert_eq!(scan(&s, &mut det, &mut st), []);
    st.insert(1007, b"min HTTP/1.1\r\n");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 10)]);
    st.insert(1021, b"Host: x\r\n");
    assert_eq!(
        scan(&s, &mut det, &mut st),
        [],
        "the kept window holds the match: not re-reported"
    );
    // A second occurrence, later, is a new match.
    st.insert(1030, b"GET /admin");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 40)]);
    assert_eq!(scan(&s, &mut det, &mut st), [], "nothing new");
}

#[test]
fn byte_by_byte_segments_match_once() {
    let s = set(ADMIN);
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 1);
    let data = b"xx/admin yy /admin";
    let mut all = Vec::new();
    for (i, b) in data.iter().enumerate() {
        st.insert(1 + i as u32, &[*b]);
        all.extend(scan(&s, &mut det, &mut st));
    }
    assert_eq!(all, [(1, 8), (1, 18)]);
}

#[test]
fn relative_chain_split_across_segments() {
    let s = set(
        r#"alert tcp any any -> any any (msg:"chain"; content:"GET"; content:"admin"; distance:0; within:10; sid:1;)"#,
    );
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 0);
    assert!(s.stream_window() >= 13);
    st.insert(0, b"xxxxGET /a");
    assert_eq!(scan(&s, &mut det, &mut st), []);
    st.insert(10, b"dmin");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 14)]);
}

#[test]
fn absolute_offsets_count_from_the_stream_start() {
    let s = set(r#"alert tcp any any -> any any (msg:"start"; content:"GET"; depth:3; sid:1;)"#);
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 0);
    st.insert(0, b"GE");
    assert_eq!(scan(&s, &mut det, &mut st), []);
    st.insert(2, b"T / GET");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 3)]);
    st.insert(9, b"GET GET");
    assert_eq!(scan(&s, &mut det, &mut st), [], "only the stream's first bytes");
}

#[test]
fn retransmission_does_not_realert() {
    let s = set(ADMIN);
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 5000);
    st.insert(5000, b"GET /admin");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 10)]);
    let again = st.insert(5000, b"GET /admin");
    assert_eq!((again.new_bytes, again.anomalies.len()), (0, 0));
    assert_eq!(scan(&s, &mut det, &mut st), []);
    // A retransmission that overlaps and extends: only the new bytes count.
    let ext = st.insert(5004, b"/admin /x");
    assert_eq!((ext.new_bytes, ext.anomalies.len()), (3, 0));
    assert_eq!(scan(&s, &mut det, &mut st), []);
    // The kept window (6 bytes for this rule set) is compared; older
    // overlapping bytes are counted as unchecked.
    assert_eq!(st.stats().retransmitted_bytes, 12);
    assert_eq!(st.stats().unchecked_overlap_bytes, 4);
}

#[test]
fn out_of_order_segments_reassemble() {
    let s = set(r#"alert tcp any any -> any any (msg:"hw"; content:"helloworld!"; sid:1;)"#);
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 100);
    assert_eq!(st.insert(110, b"!").new_bytes, 0);
    assert_eq!(st.insert(105, b"world").new_bytes, 0);
    assert_eq!(st.out_of_order_bytes(), 6);
    assert_eq!(scan(&s, &mut det, &mut st), []);
    assert_eq!(st.insert(100, b"hello").new_bytes, 11);
    assert_eq!(st.out_of_order_bytes(), 0);
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 11)]);
    assert_eq!(st.stats().out_of_order_segments, 2);
    assert_eq!(st.contiguous_len(), 11);
}

#[test]
fn overlap_with_different_data_is_reported_and_first_data_kept() {
    let s = set(
        "alert tcp any any -> any any (msg:\"orig\"; content:\"world\"; sid:1;)\n\
         alert tcp any any -> any any (msg:\"evasion\"; content:\"WORLD\"; sid:2;)",
    );
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 1000);
    st.insert(1000, b"hello world");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 11)]);
    let out = st.insert(1006, b"WORLD");
    assert_eq!(
        out.anomalies,
        [StreamAnomaly::OverlapDifferentData {
            seq_start: 1006,
            seq_end: 1011
        }]
    );
    assert_eq!(scan(&s, &mut det, &mut st), []);
    // Out of order: the first segment buffered wins over a later one.
    st.insert(1020, b"abcWORLD");
    let out = st.insert(1018, b"12abcworld");
    assert_eq!(
        out.anomalies,
        [StreamAnomaly::OverlapDifferentData {
            seq_start: 1023,
            seq_end: 1028
        }]
    );
    st.insert(1011, b"1234567");
    assert_eq!(scan(&s, &mut det, &mut st), [(2, 28)]);
    assert_eq!(st.stats().overlaps_different, 2);
}

#[test]
fn depth_is_honored() {
    let s = set(ADMIN);
    let mut det = Detector::new(DetectorConfig {
        stream: StreamConfig { depth: 100, window: 0 },
        ..DetectorConfig::default()
    });
    let mut st = det.new_stream(&s, 0);
    st.insert(0, &[b'.'; 90]);
    assert_eq!(scan(&s, &mut det, &mut st), []);
    // "/admin" straddles the depth at 100: not inspected.
    let out = st.insert(90, b"........./admin");
    assert_eq!(out.new_bytes, 10);
    assert_eq!(out.anomalies, [StreamAnomaly::DepthReached]);
    assert_eq!(scan(&s, &mut det, &mut st), []);
    let out = st.insert(105, b"/admin /admin");
    assert_eq!((out.new_bytes, out.anomalies.len()), (0, 0), "reported once");
    assert_eq!(scan(&s, &mut det, &mut st), []);
    assert!(st.stats().depth_reached);
    assert_eq!(st.stats().bytes_past_depth, 5 + 13);
}

#[test]
fn a_depth_of_u64_max_is_no_limit() {
    let s = set(ADMIN);
    let mut det = Detector::new(DetectorConfig {
        stream: StreamConfig {
            depth: u64::MAX,
            window: 0,
        },
        ..DetectorConfig::default()
    });
    let mut st = det.new_stream(&s, 0);
    let out = st.insert(0, b"GET /admin HTTP/1.1");
    assert_eq!((out.new_bytes, out.anomalies.len()), (19, 0));
    assert_eq!(scan(&s, &mut det, &mut st).len(), 1);
    assert!(!st.stats().depth_reached);
}

#[test]
fn memory_cap_drops_out_of_order_data_and_skips_the_gap() {
    let s = set(ADMIN);
    let mut det = Detector::new(DetectorConfig {
        stream_memcap: 4096,
        ..DetectorConfig::default()
    });
    let mem = det.stream_memory().clone();
    let mut st = det.new_stream(&s, 0);
    // One out-of-order segment fits, the second does not.
    assert!(st.insert(1000, &[b'a'; 2000]).anomalies.is_empty());
    let mut big = b"/admin".to_vec();
    big.resize(2040, b'b');
    let out = st.insert(3000, &big);
    assert_eq!(
        out.anomalies,
        [StreamAnomaly::OutOfOrderDropped {
            seq_start: 3000,
            seq_end: 5040
        }]
    );
    assert_eq!(mem.dropped_bytes(), 2040);
    assert_eq!(mem.dropped_segments(), 1);
    assert!(mem.used() <= mem.cap());
    // The gap before the buffered data fills: the stream runs to the hole,
    // skips it (it will never be resent) and goes on after it.
    let out = st.insert(0, &[b'.'; 1000]);
    assert_eq!(out.new_bytes, 3000);
    assert_eq!(scan(&s, &mut det, &mut st), []);
    let out = st.insert(5040, b" /admin");
    assert_eq!(
        out.anomalies,
        [StreamAnomaly::GapSkipped {
            seq_start: 3000,
            seq_end: 5040
        }]
    );
    assert_eq!(out.new_bytes, 7);
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 5047)]);
    assert_eq!(st.stats().gaps_skipped, 1);
    drop(st);
    assert_eq!(mem.used(), 0, "a dropped stream releases its memory");
}

#[test]
fn sequence_numbers_wrap() {
    let s = set(ADMIN);
    let mut det = Detector::default();
    let first = u32::MAX - 3;
    let mut st = det.new_stream(&s, first);
    st.insert(first, b"GET /ad");
    assert_eq!(scan(&s, &mut det, &mut st), []);
    st.insert(first.wrapping_add(7), b"min");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 10)]);
    // Old data from before the wrap is a retransmission.
    assert_eq!(st.insert(first, b"GET").new_bytes, 0);
}

#[test]
fn stream_rules_and_packet_rules_do_not_double_alert() {
    let s = set(
        "alert tcp any any -> any any (msg:\"stream\"; content:\"evil\"; sid:1;)\n\
         alert tcp any any -> any any (msg:\"packet\"; content:\"evil\"; flow:no_stream; sid:2;)\n\
         alert tcp any any -> any any (msg:\"only stream\"; content:\"evil\"; flow:only_stream; sid:3;)",
    );
    let mut det = Detector::default();
    let mut st = det.new_stream(&s, 0);
    let mut flow = FlowState::new();
    let payload = b"an evil thing";
    st.insert(0, payload);
    let mut p = Packet::new(Protocol::Tcp, ip("10.0.0.1"), ip("172.17.0.2"), payload, &mut flow);
    p.payload_in_stream = true;
    let pv: Vec<u32> = s.match_packet(&mut det, &mut p).alerts.iter().map(|m| m.sid).collect();
    let sv: Vec<u32> = s
        .match_stream(&mut det, &mut p, &mut st)
        .alerts
        .iter()
        .map(|m| m.sid)
        .collect();
    assert_eq!(pv, [2]);
    assert_eq!(sv, [1, 3]);
}

/// Memory of 10 000 flows, each with 3 KiB scanned in order and 4 KiB
/// waiting behind a gap (two segments of 2 KiB). Run with `--nocapture` to
/// see the numbers.
#[test]
fn reassembly_memory_for_10k_flows() {
    let s = set(ADMIN);
    let det = Detector::new(DetectorConfig {
        stream_memcap: 1 << 30,
        ..DetectorConfig::default()
    });
    let mut det = det;
    let mem = det.stream_memory().clone();
    let mut streams = Vec::with_capacity(10_000);
    let data = vec![b'x'; 3072];
    let seg = vec![b'y'; 2048];
    for i in 0..10_000u32 {
        let mut st = det.new_stream(&s, i * 7);
        st.insert(i * 7, &data);
        scan(&s, &mut det, &mut st);
        st.insert(i * 7 + 4096, &seg);
        st.insert(i * 7 + 4096 + 2048, &seg);
        streams.push(st);
    }
    let total: usize = streams.iter().map(|s| s.memory_used()).sum();
    assert_eq!(mem.used(), total);
    let per_flow = total / streams.len();
    println!(
        "reassembly memory: 10000 flows, 4 KiB out of order + {} B window each: {} bytes charged ({:.1} MiB), {} B per flow, peak {:.1} MiB, struct {} B",
        s.stream_window(),
        total,
        total as f64 / (1 << 20) as f64,
        per_flow,
        mem.peak() as f64 / (1 << 20) as f64,
        std::mem::size_of::<StreamReassembler>()
    );
    // 4096 data bytes, two segment overheads, the trimmed window buffer.
    assert!((4096..4096 + 2 * 64 + 256).contains(&per_flow), "{per_flow}");
    drop(streams);
    assert_eq!(mem.used(), 0);
}

/// Feeds `segments` (in order, contiguous) to a new stream of `s`, scanning
/// after each; every alert.
fn scan_segments(s: &RuleSet, segments: &[&[u8]]) -> Vec<(u32, u64)> {
    let mut det = Detector::default();
    let mut st = det.new_stream(s, 0);
    let mut seq = 0u32;
    let mut all = Vec::new();
    for seg in segments {
        st.insert(seq, seg);
        seq += seg.len() as u32;
        all.extend(scan(s, &mut det, &mut st));
    }
    all
}

#[test]
fn byte_test_on_bytes_of_a_later_segment_matches_once() {
    let s = set(r#"alert tcp any any -> any any (msg:"len"; content:"LEN"; byte_test:2,>,100,0,relative; sid:1;)"#);
    assert_eq!(scan_segments(&s, &[b"LEN\x01\x00 rest"]), [(1, 5)]);
    assert_eq!(scan_segments(&s, &[b"LEN", b"\x01\x00 rest", b" more"]), [(1, 5)]);
    assert_eq!(scan_segments(&s, &[b"LEN", b"\x01", b"\x00 rest"]), [(1, 5)]);
    assert_eq!(
        scan_segments(&s, &[b"LEN", b"\x00\x10 rest"]),
        [],
        "0x0010 is not > 100"
    );
}

#[test]
fn isdataat_on_bytes_of_a_later_segment_matches_once() {
    let s = set(r#"alert tcp any any -> any any (msg:"data"; content:"AB"; isdataat:2,relative; sid:1;)"#);
    assert_eq!(scan_segments(&s, &[b"xxABCDE"]), [(1, 6)]);
    assert_eq!(scan_segments(&s, &[b"xxAB", b"CDE", b"FG"]), [(1, 6)]);
    assert_eq!(scan_segments(&s, &[b"xxAB", b"C", b"DE"]), [(1, 6)]);
    assert_eq!(scan_segments(&s, &[b"xxAB", b"C"]), []);
    let s = set(r#"alert tcp any any -> any any (msg:"data"; content:"AB"; isdataat:5; sid:1;)"#);
    assert_eq!(scan_segments(&s, &[b"xxAB", b"CD", b"EF"]), [(1, 6)]);
}

#[test]
fn byte_jump_on_bytes_of_a_later_segment_matches_once() {
    // The jump lands before the bytes it read (from_beginning): the match
    // still ends after them.
    let s = set(
        r#"alert tcp any any -> any any (msg:"jmp"; content:"JMP"; byte_jump:1,0,relative,from_beginning; sid:1;)"#,
    );
    assert_eq!(scan_segments(&s, &[b"JMP\x01rest"]), [(1, 4)]);
    assert_eq!(scan_segments(&s, &[b"JMP", b"\x01rest", b"more"]), [(1, 4)]);
    let s = set(
        r#"alert tcp any any -> any any (msg:"jmp"; content:"JMP"; byte_jump:1,0,relative; content:"Z"; within:1; sid:1;)"#,
    );
    assert_eq!(scan_segments(&s, &[b"JMP", b"\x02", b"abZ", b"Z"]), [(1, 7)]);
    assert_eq!(scan_segments(&s, &[b"JMP", b"\x02", b"aZ"]), []);
}

/// Alerts as (sid, stream offset).
type Alerts = Vec<(u32, u64)>;

/// Like [`scan_segments`], then ends the stream (as a FIN would) and scans
/// once more.
fn scan_and_close(s: &RuleSet, segments: &[&[u8]]) -> (Alerts, Alerts) {
    let mut det = Detector::default();
    let mut st = det.new_stream(s, 0);
    let mut seq = 0u32;
    let mut before = Vec::new();
    for seg in segments {
        st.insert(seq, seg);
        seq += seg.len() as u32;
        before.extend(scan(s, &mut det, &mut st));
    }
    st.close();
    let mut at_end = scan(s, &mut det, &mut st);
    at_end.extend(scan(s, &mut det, &mut st));
    (before, at_end)
}

const NOT_B_AFTER_A: &str =
    r#"alert tcp any any -> any any (msg:"a not b"; content:"a"; content:!"b"; within:1; sid:1;)"#;

#[test]
fn negated_content_at_a_segment_boundary_waits_for_the_next_byte() {
    let s = set(NOT_B_AFTER_A);
    assert_eq!(scan_and_close(&s, &[b"xxa", b"b"]), (vec![], vec![]), "b followed");
    assert_eq!(
        scan_and_close(&s, &[b"xxa", b"c", b"d"]),
        (vec![(1, 4)], vec![]),
        "something else followed: one alert, when it arrived"
    );
    assert_eq!(
        scan_and_close(&s, &[b"xxa"]),
        (vec![], vec![(1, 3)]),
        "the stream ended after a: one alert, at its end"
    );
    assert_eq!(
        scan_and_close(&s, &[b"xxac"]),
        (vec![(1, 4)], vec![]),
        "decided in one segment"
    );
    // A later "a" waits after an earlier one alerted.
    assert_eq!(scan_and_close(&s, &[b"xac", b"xa"]), (vec![(1, 3)], vec![(1, 5)]));
    assert_eq!(scan_and_close(&s, &[b"xac", b"xa", b"b"]), (vec![(1, 3)], vec![]));
}

#[test]
fn negated_isdataat_waits_for_the_stream_end() {
    let s = set(r#"alert tcp any any -> any any (msg:"short"; content:"AB"; isdataat:!2,relative; sid:1;)"#);
    assert_eq!(scan_and_close(&s, &[b"xxAB", b"C"]), (vec![], vec![(1, 4)]));
    assert_eq!(scan_and_close(&s, &[b"xxAB", b"C", b"D"]), (vec![], vec![]));
    assert_eq!(scan_and_close(&s, &[b"xxABC", b"D"]), (vec![], vec![]));
}

#[test]
fn reaching_the_depth_decides_what_waited() {
    let s = set(NOT_B_AFTER_A);
    let mut det = Detector::new(DetectorConfig {
        stream: StreamConfig { depth: 4, window: 0 },
        ..DetectorConfig::default()
    });
    let mut st = det.new_stream(&s, 0);
    st.insert(0, b"xxa");
    assert_eq!(scan(&s, &mut det, &mut st), []);
    // The byte after "a" is past the depth: never inspected.
    st.insert(3, b"xb");
    assert_eq!(scan(&s, &mut det, &mut st), [(1, 4)]);
    let mut st = det.new_stream(&s, 0);
    st.insert(0, b"xya");
    assert_eq!(scan(&s, &mut det, &mut st), []);
    st.insert(3, b"b");
    assert_eq!(scan(&s, &mut det, &mut st), [], "b is inside the depth");
}

/// A rule of one sid-1 alert from its options.
fn rule(options: &str) -> RuleSet {
    set(&format!(r#"alert tcp any any -> any any (msg:"r"; {options} sid:1;)"#))
}

#[test]
fn pcre_split_across_segments() {
    let s = rule(r#"pcre:"/\/adm[i]n\b/";"#);
    assert_eq!(scan_segments(&s, &[b"GET /ad", b"min HTTP"]), [(1, 10)]);
    assert_eq!(scan_segments(&s, &[b"GET /ad", b"minx"]), []);
    // Relative to the content's end.
    let s = rule(r#"content:"GET"; pcre:"/^ \/admin/R";"#);
    assert_eq!(scan_segments(&s, &[b"GET /ad", b"min", b" /admin"]), [(1, 10)]);
    assert_eq!(scan_segments(&s, &[b"GET", b" /admin"]), [(1, 10)]);
    assert_eq!(scan_segments(&s, &[b"GET ", b"x/admin"]), [], "not right after GET");
}

#[test]
fn nocase_split_across_segments() {
    let s = rule(r#"content:"admin"; nocase;"#);
    assert_eq!(scan_segments(&s, &[b"GET /AD", b"mIN"]), [(1, 10)]);
    let s = rule(r#"content:"admin";"#);
    assert_eq!(scan_segments(&s, &[b"GET /AD", b"MIN"]), []);
}

#[test]
fn startswith_split_across_segments_is_the_stream_start() {
    let s = rule(r#"content:"GET"; startswith;"#);
    assert_eq!(scan_segments(&s, &[b"G", b"ET /", b"GET"]), [(1, 3)]);
    assert_eq!(scan_segments(&s, &[b" G", b"ET /"]), []);
    assert_eq!(scan_segments(&s, &[b"xx", b"GET"]), [], "not at the stream start");
}

#[test]
fn endswith_is_the_end_of_the_data_scanned() {
    let s = rule(r#"content:"END"; endswith;"#);
    assert_eq!(scan_segments(&s, &[b"xxEN", b"D"]), [(1, 5)]);
    // At the end of the data there was when it was scanned: later data
    // does not undo it.
    assert_eq!(scan_segments(&s, &[b"xxEND", b" more"]), [(1, 5)]);
    assert_eq!(
        scan_segments(&s, &[b"xxEN", b"D more"]),
        [],
        "not at the end of that chunk"
    );
}

#[test]
fn offset_and_depth_split_across_segments() {
    let s = rule(r#"content:"ab"; offset:3; depth:4;"#);
    assert_eq!(scan_segments(&s, &[b"xxxa", b"b"]), [(1, 5)]);
    assert_eq!(scan_segments(&s, &[b"xxx", b"xxa", b"b"]), [(1, 7)]);
    assert_eq!(scan_segments(&s, &[b"xxxxxxa", b"b"]), [], "past offset + depth");
    assert_eq!(scan_segments(&s, &[b"xa", b"b"]), [], "before the offset");
}

#[test]
fn checks_that_cannot_wait_are_decided_on_the_data_scanned() {
    // Absolute: by the time byte 50 arrives, "USER" may be out of the
    // window; decided at once, as before.
    let s = rule(r#"content:"USER"; content:!"admin"; depth:50;"#);
    assert_eq!(scan_and_close(&s, &[b"USER x", b"yyyy"]), (vec![(1, 4)], vec![]));
    // A span wider than the stream window (within:2000 over a 1-byte
    // content).
    let s = rule(r#"content:"a"; content:!"b"; within:2000;"#);
    assert!(s.stream_window() < 2001);
    assert_eq!(scan_and_close(&s, &[b"xxa", b"c"]), (vec![(1, 3)], vec![]));
}
