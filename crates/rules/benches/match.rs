//! Throughput of packet matching (prefilter + full evaluation) with 0,
//! 1 000 and 10 000 generated content rules on HTTP-like request and
//! response payloads, in packets per second (`match_packets`) and bytes per
//! second (`match_bytes`).
//!
//! Rules are `alert tcp any any -> any any (msg:"x"; content:"/path/NNNN";
//! sid:N;)`; one request in ten asks for a `/path/NNNN` that a rule names,
//! so the full evaluation runs for some packets and alerts are built.
//!
//! Run: `cargo bench -p rules --bench match`.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use rules::{ClassificationTable, Detector, Direction, FlowState, Packet, Protocol, RuleSet, Vars};

const PACKETS: usize = 1000;

fn rules(n: usize) -> RuleSet {
    let mut text = String::with_capacity(n * 80);
    for i in 0..n {
        text.push_str(&format!(
            "alert tcp any any -> any any (msg:\"x\"; content:\"/path/{i:04}\"; sid:{};)\n",
            i + 1
        ));
    }
    let start = Instant::now();
    let (set, report) = RuleSet::parse(
        "bench.rules",
        &text,
        &Vars::with_home_net(["172.17.0.0/16"]),
        &ClassificationTable::suricata_default(),
    );
    assert_eq!(report.loaded, n);
    eprintln!("{n} rules: loaded and indexed in {:?}", start.elapsed());
    set
}

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Half requests, half responses, 200 B to 1.4 KB.
fn payloads() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let hosts = ["api.internal", "shop.example.com", "cdn.example.net", "10.0.3.7:8080"];
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
    ];
    let words = [
        "users", "orders", "static", "img", "v1", "v2", "search", "cart", "login", "health", "metrics",
    ];
    let mut out = Vec::with_capacity(PACKETS);
    for i in 0..PACKETS {
        if i % 2 == 0 {
            let path = if i % 20 == 0 {
                format!("/path/{:04}", rng.next() % 10_000)
            } else {
                format!("/{}/{}/{}", rng.pick(&words), rng.pick(&words), rng.next() % 100_000)
            };
            let method = if rng.next() % 4 == 0 { "POST" } else { "GET" };
            let mut req = format!(
                "{method} {path}?id={}&q={} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\n\
                 Accept-Encoding: gzip, deflate\r\nCookie: session={:016x}\r\nConnection: keep-alive\r\n",
                rng.next() % 1000,
                rng.pick(&words),
                rng.pick(&hosts),
                rng.pick(&agents),
                rng.next()
            );
            if method == "POST" {
                let body = format!(
                    "{{\"user\":\"{}\",\"items\":[{},{}]}}",
                    rng.pick(&words),
                    rng.next() % 99,
                    rng.next() % 99
                );
                req.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ));
            } else {
                req.push_str("\r\n");
            }
            out.push(req.into_bytes());
        } else {
            let body_len = 100 + (rng.next() % 1000) as usize;
            let mut body = String::from("<html><head><title>ok</title></head><body>");
            while body.len() < body_len {
                body.push_str(rng.pick(&words));
                body.push(' ');
            }
            body.push_str("</body></html>");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
                 Content-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\r\n{body}",
                body.len()
            );
            out.push(resp.into_bytes());
        }
    }
    out
}

fn run_batch(set: &RuleSet, det: &mut Detector, payloads: &[Vec<u8>]) -> usize {
    let src: IpAddr = "10.0.0.1".parse().unwrap();
    let dst: IpAddr = "172.17.0.2".parse().unwrap();
    let mut alerts = 0;
    for (i, p) in payloads.iter().enumerate() {
        let mut flow = FlowState::new();
        let mut pkt = Packet::new(Protocol::Tcp, src, dst, p, &mut flow);
        pkt.src_port = 40000 + (i % 1000) as u16;
        pkt.dst_port = 80;
        pkt.tcp_flags = 0x18;
        pkt.established = true;
        pkt.direction = Some(if i % 2 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        });
        alerts += set.match_packet(det, &mut pkt).alerts.len();
    }
    alerts
}

fn bench(c: &mut Criterion) {
    let payloads = payloads();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    eprintln!(
        "{} payloads, {} bytes, {:.0} B average",
        payloads.len(),
        bytes,
        bytes as f64 / payloads.len() as f64
    );
    let sets: Vec<(usize, RuleSet)> = [0, 1_000, 10_000].into_iter().map(|n| (n, rules(n))).collect();
    for (name, throughput) in [
        ("match_packets", Throughput::Elements(PACKETS as u64)),
        ("match_bytes", Throughput::Bytes(bytes as u64)),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(throughput);
        group.measurement_time(Duration::from_secs(4));
        group.warm_up_time(Duration::from_secs(1));
        for (n, set) in &sets {
            let mut det = Detector::default();
            let alerts = run_batch(set, &mut det, &payloads);
            eprintln!("{n} rules: {alerts} alerts per batch of {PACKETS}");
            group.bench_function(format!("{n}_rules"), |b| {
                b.iter(|| black_box(run_batch(set, &mut det, black_box(&payloads))))
            });
        }
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
