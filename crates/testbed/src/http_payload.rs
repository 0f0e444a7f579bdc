//! HTTP/1.1-looking payloads for the synthetic Docker-host traffic
//! ([`PayloadKind::Http`](crate::docker_mix::PayloadKind::Http)) and the
//! Suricata content rules that match a known small fraction of them, for
//! the signature engine's benchmark (`ringsieve bench --payload http
//! --worker ids`, `scripts/bench-ids.sh`, the `ringsieve-bench-rules`
//! binary).
//!
//! Each direction of a flow is an [`HttpStream`]: an endless keep-alive
//! conversation of messages of one length ([`HttpStream::message_len`]),
//! requests from the client (GET or POST, a path from a vocabulary, Host,
//! User-Agent, Accept, Accept-Encoding, Accept-Language, Connection, a
//! Cookie, and a JSON body with its Content-Length for a POST), responses
//! from the server (a status line, Server, Date, Content-Type,
//! Content-Length, Cache-Control, X-Backend, and an HTML or JSON body).
//! Message `j` depends only on the stream's seed and `j`, so the bytes at
//! any stream offset are computed without the ones before
//! ([`HttpStream::fill`]): the traffic generator cuts a direction's stream
//! into segments of any size, and the reassembled stream is well-formed
//! HTTP whatever the cut.
//!
//! # Tokens and rules
//!
//! One message in [`TOKEN_ONE_IN`] carries a token `t` in
//! `0..`[`RULE_TOKENS`], of the family `t % 4`: a request path
//! `/path/tttt` (0), a `POST /upload/tttt` (1), a crawler's User-Agent
//! `Bot-tttt/2.1` (2), or, in a response, `X-Backend: Node-tttt` (3).
//! [`rules`]`(n)` writes one rule per token below `n`, of the token's
//! family, so with `n` rules a fraction `n / RULE_TOKENS` of the
//! token-bearing messages matches one rule: 0.5 % of messages with 1 000
//! rules, 5 % with 10 000. Every other message matches none (the tokens
//! are the only strings the rules name that the traffic contains).
//!
//! Not a parser, and not a model of any real site: the vocabulary is small
//! and the messages are padded to their stream's length (a longer session
//! cookie, a longer body).

use std::fmt::Write as _;

/// Tokens rules can name: `0..RULE_TOKENS`, rendered as four digits.
pub const RULE_TOKENS: u32 = 10_000;
/// One message in this many carries a token.
pub const TOKEN_ONE_IN: u64 = 20;
/// First sid of the generated rules (rule for token `t`: this + `t`).
pub const FIRST_SID: u32 = 2_100_000;

/// Shortest and longest request messages.
const REQUEST_LEN: (usize, usize) = (560, 1200);
/// Shortest and longest response messages.
const RESPONSE_LEN: (usize, usize) = (420, 2400);

const HOSTS: [&str; 6] = [
    "api.internal",
    "shop.example.com",
    "cdn.example.net",
    "10.0.3.7:8080",
    "auth.svc.cluster.local",
    "registry.example.org",
];
const AGENTS: [&str; 5] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Gecko/20100101 Firefox/125.0",
];
const ACCEPTS: [&str; 3] = [
    "*/*",
    "application/json",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
];
const WORDS: [&str; 16] = [
    "users", "orders", "static", "img", "v1", "v2", "search", "cart", "login", "health", "metrics", "items",
    "checkout", "profile", "assets", "reports",
];
const STATUS: [&str; 4] = ["200 OK", "200 OK", "404 Not Found", "201 Created"];
/// Characters of session cookies (base64url).
const COOKIE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// One direction of a flow's HTTP conversation, as an endless byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpStream {
    seed: u64,
    to_server: bool,
    message_len: usize,
}

impl HttpStream {
    /// The requests (`to_server`) or responses of the flow direction
    /// `seed` stands for.
    pub fn new(seed: u64, to_server: bool) -> Self {
        let (low, high) = if to_server { REQUEST_LEN } else { RESPONSE_LEN };
        let message_len = low + (mix64(seed ^ 0x004c_454e) % (high - low) as u64) as usize;
        Self {
            seed,
            to_server,
            message_len,
        }
    }

    /// Bytes of every message of the stream.
    pub fn message_len(&self) -> usize {
        self.message_len
    }

    /// Whether it carries requests (client to server).
    pub fn to_server(&self) -> bool {
        self.to_server
    }

    /// Message `index` (0-based), exactly [`Self::message_len`] bytes.
    pub fn message(&self, index: u64) -> Vec<u8> {
        let mut rng = Rng(mix64(self.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let token = (rng.next() % TOKEN_ONE_IN == 0).then(|| {
            let draw = (rng.next() % u64::from(RULE_TOKENS / 4)) as u32 * 4;
            if self.to_server {
                draw + (rng.next() % 3) as u32
            } else {
                draw + 3
            }
        });
        let text = if self.to_server {
            request(&mut rng, token, self.message_len)
        } else {
            response(&mut rng, token, self.message_len, index)
        };
        debug_assert_eq!(text.len(), self.message_len);
        text.into_bytes()
    }

    /// Appends the stream's bytes `offset..offset + len` to `out`.
    pub fn fill(&self, offset: u64, len: usize, out: &mut Vec<u8>) {
        let m = self.message_len as u64;
        let end = offset + len as u64;
        let mut at = offset;
        while at < end {
            let index = at / m;
            let message = self.message(index);
            let from = (at - index * m) as usize;
            let to = (end - index * m).min(m) as usize;
            out.extend_from_slice(&message[from..to]);
            at = index * m + to as u64;
        }
    }
}

/// A request of exactly `len` bytes; `token` of family 0, 1 or 2.
fn request(rng: &mut Rng, token: Option<u32>, len: usize) -> String {
    let family = token.map(|t| t % 4);
    let post = family == Some(1) || (family.is_none() && rng.next() % 4 == 0);
    let mut head = String::with_capacity(len);
    let method = if post { "POST" } else { "GET" };
    match (family, token) {
        (Some(0), Some(t)) => {
            let _ = write!(head, "GET /path/{t:04}?id={}", rng.next() % 1000);
        }
        (Some(1), Some(t)) => {
            let _ = write!(head, "POST /upload/{t:04}");
        }
        _ => {
            let _ = write!(
                head,
                "{method} /{}/{}/{}?id={}&q={}",
                rng.pick(&WORDS),
                rng.pick(&WORDS),
                rng.next() % 100_000,
                rng.next() % 1000,
                rng.pick(&WORDS)
            );
        }
    }
    head.push_str(" HTTP/1.1\r\nHost: ");
    head.push_str(rng.pick(&HOSTS));
    head.push_str("\r\nUser-Agent: ");
    match (family, token) {
        (Some(2), Some(t)) => {
            let _ = write!(
                head,
                "Mozilla/5.0 (compatible; Bot-{t:04}/2.1; +http://crawler.example.org/)"
            );
        }
        _ => head.push_str(rng.pick(&AGENTS)),
    }
    head.push_str("\r\nAccept: ");
    head.push_str(rng.pick(&ACCEPTS));
    head.push_str(
        "\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nConnection: keep-alive\r\n",
    );
    if post {
        head.push_str("Content-Type: application/json\r\n");
    }
    // A session cookie of at least 16 characters; the rest, for a GET,
    // pads the message to its length.
    head.push_str("Cookie: session=");
    let fixed_tail = "\r\n".len() + if post { 0 } else { "\r\n".len() };
    let cookie = if post {
        16
    } else {
        len.checked_sub(head.len() + fixed_tail)
            .filter(|&n| n >= 16)
            .expect("requests fit their stream's message length")
    };
    for _ in 0..cookie {
        head.push(char::from(COOKIE_CHARS[(rng.next() % 64) as usize]));
    }
    head.push_str("\r\n");
    if !post {
        head.push_str("\r\n");
        return head;
    }
    let body_prefix = format!(
        "{{\"user\":\"{}\",\"items\":[{},{}],\"note\":\"",
        rng.pick(&WORDS),
        rng.next() % 99,
        rng.next() % 99
    );
    let body_len = with_content_length(&mut head, len, "application/json");
    let body = fill_words(rng, &body_prefix, "\"}", body_len);
    head.push_str(&body);
    head
}

/// A response of exactly `len` bytes; `token` of family 3.
fn response(rng: &mut Rng, token: Option<u32>, len: usize, index: u64) -> String {
    let mut head = String::with_capacity(len);
    head.push_str("HTTP/1.1 ");
    head.push_str(rng.pick(&STATUS));
    let seconds = index % 86_400;
    let _ = write!(
        head,
        "\r\nServer: nginx/1.25.3\r\nDate: Thu, 01 Jan 2026 {:02}:{:02}:{:02} GMT\r\n",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    let json = rng.next() % 3 == 0;
    let content_type = if json {
        "application/json"
    } else {
        "text/html; charset=utf-8"
    };
    head.push_str("Cache-Control: no-cache\r\nX-Backend: ");
    match token {
        Some(t) => {
            let _ = write!(head, "Node-{t:04}");
        }
        None => {
            let _ = write!(head, "web-{}", rng.next() % 16);
        }
    }
    head.push_str("\r\nConnection: keep-alive\r\n");
    let body_len = with_content_length(&mut head, len, content_type);
    let body = if json {
        let prefix = format!("{{\"id\":{},\"status\":\"ok\",\"data\":\"", rng.next() % 100_000);
        fill_words(rng, &prefix, "\"}", body_len)
    } else {
        fill_words(
            rng,
            "<html><head><title>ok</title></head><body><p>",
            "</p></body></html>",
            body_len,
        )
    };
    head.push_str(&body);
    head
}

/// Appends Content-Type and a Content-Length that makes the message `len`
/// bytes, and the blank line; returns the body's length.
fn with_content_length(head: &mut String, len: usize, content_type: &str) -> usize {
    head.push_str("Content-Type: ");
    head.push_str(content_type);
    head.push_str("\r\nContent-Length: ");
    let fixed = head.len() + "\r\n\r\n".len();
    // The body's length has as many digits as it has; when no length fits
    // (1003 bytes left: 999 is one digit short, 1000 one too long), one
    // space of optional whitespace before the value takes the byte.
    for spaces in 0..=1 {
        let found = (1..=4).find_map(|digits| {
            let body = len.checked_sub(fixed + spaces + digits)?;
            (body.to_string().len() == digits).then_some(body)
        });
        if let Some(body_len) = found {
            let _ = write!(head, "{:spaces$}{body_len}\r\n\r\n", "");
            return body_len;
        }
    }
    unreachable!("a length of 1 to 4 digits fits with at most one space")
}

/// `prefix`, words separated by spaces, `suffix`: exactly `len` bytes.
fn fill_words(rng: &mut Rng, prefix: &str, suffix: &str, len: usize) -> String {
    let mut body = String::with_capacity(len);
    body.push_str(prefix);
    let words_end = len
        .checked_sub(suffix.len())
        .filter(|&end| end >= prefix.len())
        .expect("bodies hold their prefix and suffix");
    while body.len() < words_end {
        let word = rng.pick(&WORDS);
        let room = words_end - body.len();
        body.push_str(&word[..word.len().min(room)]);
        if body.len() < words_end {
            body.push(' ');
        }
    }
    body.push_str(suffix);
    body
}

/// The rule for token `t`, of its family (`t % 4`), sid [`FIRST_SID`] + `t`.
pub fn rule(t: u32) -> String {
    let sid = FIRST_SID + t;
    match t % 4 {
        0 => format!(
            "alert tcp any any -> any any (msg:\"RS BENCH request for /path/{t:04}\"; \
             flow:to_server,established; content:\"/path/{t:04}\"; fast_pattern; sid:{sid}; rev:1;)"
        ),
        1 => format!(
            "alert tcp any any -> any any (msg:\"RS BENCH upload to /upload/{t:04}\"; \
             flow:to_server,established; content:\"POST\"; content:\"/upload/{t:04}\"; fast_pattern; \
             distance:1; within:13; sid:{sid}; rev:1;)"
        ),
        2 => format!(
            "alert tcp any any -> any any (msg:\"RS BENCH crawler bot-{t:04}\"; \
             flow:to_server,established; content:\"User-Agent|3a| \"; content:\"bot-{t:04}/\"; nocase; \
             fast_pattern; distance:0; within:40; sid:{sid}; rev:1;)"
        ),
        _ => format!(
            "alert tcp any any -> any any (msg:\"RS BENCH response from backend node-{t:04}\"; \
             flow:to_client,established; content:\"x-backend|3a| node-{t:04}|0d 0a|\"; nocase; \
             sid:{sid}; rev:1;)"
        ),
    }
}

/// `n` rules (at most [`RULE_TOKENS`]), one per token `0..n`, one a line.
pub fn rules(n: u32) -> String {
    let mut text = String::with_capacity(n as usize * 200);
    for t in 0..n.min(RULE_TOKENS) {
        text.push_str(&rule(t));
        text.push('\n');
    }
    text
}

/// A small deterministic generator (xorshift64 over a splitmix64 seed).
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

/// splitmix64's finalizer; never 0 for the seeds used here (xorshift
/// needs a non-zero state).
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use rules::{ClassificationTable, Detector, Direction, FlowState, Packet, Protocol, RuleSet, Vars};

    use super::*;

    /// The message's head (up to the blank line) and body.
    fn split(message: &[u8]) -> (&str, &[u8]) {
        let at = message.windows(4).position(|w| w == b"\r\n\r\n").expect("a blank line");
        (std::str::from_utf8(&message[..at]).unwrap(), &message[at + 4..])
    }

    fn content_length(head: &str) -> Option<usize> {
        head.lines()
            .find_map(|l| l.strip_prefix("Content-Length:"))
            .map(|v| v.trim().parse().unwrap())
    }

    #[test]
    fn messages_are_well_formed_http_of_their_streams_length() {
        for seed in 0..300u64 {
            for to_server in [true, false] {
                let stream = HttpStream::new(seed, to_server);
                for index in 0..20 {
                    let message = stream.message(index);
                    assert_eq!(message.len(), stream.message_len(), "seed {seed} message {index}");
                    assert!(message
                        .iter()
                        .all(|&b| b == b'\r' || b == b'\n' || (0x20..0x7f).contains(&b)));
                    let (head, body) = split(&message);
                    let first = head.lines().next().unwrap();
                    if to_server {
                        assert!(first.starts_with("GET /") || first.starts_with("POST /"), "{first}");
                        assert!(first.ends_with(" HTTP/1.1"), "{first}");
                        for header in ["\r\nHost: ", "\r\nUser-Agent: ", "\r\nAccept: ", "\r\nCookie: session="] {
                            assert!(head.contains(header), "{header} in {head}");
                        }
                        assert_eq!(content_length(head).unwrap_or(0), body.len());
                        assert_eq!(first.starts_with("POST"), !body.is_empty());
                    } else {
                        assert!(first.starts_with("HTTP/1.1 "), "{first}");
                        assert!(head.contains("\r\nContent-Type: "));
                        assert_eq!(content_length(head), Some(body.len()));
                    }
                }
            }
        }
    }

    #[test]
    fn fill_cuts_the_same_stream_whatever_the_segment_sizes() {
        let stream = HttpStream::new(7, false);
        let whole: Vec<u8> = (0..6).flat_map(|i| stream.message(i)).collect();
        for segment in [1usize, 10, 73, 522, 1460, 5000] {
            let mut cut = Vec::new();
            let mut offset = 0u64;
            while (offset as usize) < whole.len() {
                let len = segment.min(whole.len() - offset as usize);
                stream.fill(offset, len, &mut cut);
                offset += len as u64;
            }
            assert_eq!(cut, whole, "segments of {segment}");
        }
        // Deterministic: the same seed, the same bytes; another, others.
        assert_eq!(HttpStream::new(7, false).message(3), stream.message(3));
        assert_ne!(HttpStream::new(8, false).message(3), stream.message(3));
    }

    /// Runs `rules` over messages of many streams, one packet per message;
    /// (messages, token-bearing messages, messages alerting, alerting
    /// messages whose token is below `n`).
    fn alerts(n: u32) -> (u64, u64, u64, u64) {
        let text = rules(n);
        let (set, report) = RuleSet::parse(
            "bench.rules",
            &text,
            &Vars::with_home_net(["172.17.0.0/16"]),
            &ClassificationTable::suricata_default(),
        );
        assert_eq!(report.loaded, n as usize, "{:?}", report.warnings);
        let mut det = Detector::default();
        let src: IpAddr = "172.17.0.2".parse().unwrap();
        let dst: IpAddr = "172.17.0.3".parse().unwrap();
        let (mut messages, mut tokens, mut alerting, mut expected) = (0, 0, 0, 0);
        for seed in 0..400u64 {
            for to_server in [true, false] {
                let stream = HttpStream::new(seed, to_server);
                for index in 0..25 {
                    let message = stream.message(index);
                    let text = String::from_utf8_lossy(&message);
                    let token = ["/path/", "/upload/", "Bot-", "X-Backend: Node-"].iter().find_map(|p| {
                        let at = text.find(p)? + p.len();
                        text[at..at + 4].parse::<u32>().ok()
                    });
                    messages += 1;
                    tokens += u64::from(token.is_some());
                    expected += u64::from(token.is_some_and(|t| t < n));
                    let mut flow = FlowState::new();
                    let mut pkt = Packet::new(Protocol::Tcp, src, dst, &message, &mut flow);
                    pkt.src_port = 40000;
                    pkt.dst_port = 80;
                    pkt.tcp_flags = 0x18;
                    pkt.established = true;
                    pkt.direction = Some(if to_server {
                        Direction::ToServer
                    } else {
                        Direction::ToClient
                    });
                    let verdict = set.match_packet(&mut det, &mut pkt);
                    assert!(verdict.alerts.len() <= 1);
                    if let Some(m) = verdict.alerts.first() {
                        alerting += 1;
                        assert_eq!(Some(m.sid - FIRST_SID), token, "{text}");
                    }
                }
            }
        }
        (messages, tokens, alerting, expected)
    }

    #[test]
    fn the_rules_match_exactly_the_messages_carrying_their_tokens() {
        let (messages, tokens, alerting, expected) = alerts(0);
        assert_eq!((alerting, expected), (0, 0));
        // One message in 20 carries a token.
        assert!(
            (messages / 25..messages / 16).contains(&tokens),
            "{tokens} of {messages}"
        );
        let (_, tokens, alerting, expected) = alerts(1_000);
        assert_eq!(alerting, expected);
        assert!((tokens / 14..tokens / 7).contains(&alerting), "{alerting} of {tokens}");
        let (_, tokens, alerting, _) = alerts(RULE_TOKENS);
        assert_eq!(alerting, tokens, "every token has its rule");
    }
}
