//! The JSON of EVE lines, written straight into a worker's line buffer:
//! objects whose keys come out in the order they are added (Suricata's
//! order, which `serde_json::Value` would sort), strings escaped as RFC 8259
//! requires, numbers without allocating. `serde_json` is used for values
//! built elsewhere (stats events), this for the per-flow hot path.

use std::fmt::Display;
use std::io::Write;
use std::net::IpAddr;

/// The decimal digits of `value` at the end of `digits`; returns where
/// they start.
#[inline]
fn decimal_digits(digits: &mut [u8; 20], value: u64) -> usize {
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    at
}

/// Appends `value` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let at = decimal_digits(&mut digits, value);
    out.extend_from_slice(&digits[at..]);
}

/// Appends `value` as two lowercase hex digits (`format!("{value:02x}")`).
pub(crate) fn push_hex_byte(out: &mut Vec<u8>, value: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[usize::from(value >> 4)]);
    out.push(HEX[usize::from(value & 0xf)]);
}

/// Appends `address` as its `Display` writes it: IPv4 dotted decimal
/// digit by digit (the hot case: no formatter), IPv6 through `Display`.
pub(crate) fn push_ip(out: &mut Vec<u8>, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `text` as a JSON string: quoted, with `"`, `\` and control
/// characters escaped.
pub(crate) fn push_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    push_str_content(out, text);
    out.push(b'"');
}

/// Appends `text` escaped as inside a JSON string, without the quotes.
pub(crate) fn push_str_content(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain_from..at]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        plain_from = at + 1;
    }
    out.extend_from_slice(&bytes[plain_from..]);
}

/// A JSON object being written: keys in the order they are added. Keys are
/// literals of this crate and are written unescaped.
pub(crate) struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string member.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_str(self.out, value);
    }

    /// A string member whose value is a literal of this crate that needs
    /// no escaping (event types, states, reasons): written without
    /// looking at each byte, as [`Object::str`] would write it.
    pub(crate) fn literal(&mut self, key: &str, value: &'static str) {
        debug_assert!(
            value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
            "{value:?} needs escaping"
        );
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    /// A string member from a `Display` whose text needs no escaping (IP
    /// addresses, numbers).
    pub(crate) fn display_str(&mut self, key: &str, value: impl Display) {
        self.key(key);
        self.out.push(b'"');
        // Writing to a Vec cannot fail.
        let _ = write!(self.out, "{value}");
        self.out.push(b'"');
    }

    /// An IP address member, as a string (what `display_str` writes for
    /// it, without the formatter for IPv4).
    pub(crate) fn ip(&mut self, key: &str, address: IpAddr) {
        self.key(key);
        self.out.push(b'"');
        push_ip(self.out, address);
        self.out.push(b'"');
    }

    /// A byte as a string of two lowercase hex digits.
    pub(crate) fn hex_byte(&mut self, key: &str, value: u8) {
        self.key(key);
        self.out.push(b'"');
        push_hex_byte(self.out, value);
        self.out.push(b'"');
    }

    /// An array member whose strings `write` appends itself, escaped, each
    /// between the quotes this writes: `write(out, index)` for each index
    /// below `count`.
    pub(crate) fn str_array_with(&mut self, key: &str, count: usize, mut write: impl FnMut(&mut Vec<u8>, usize)) {
        self.key(key);
        self.out.push(b'[');
        for index in 0..count {
            if index > 0 {
                self.out.push(b',');
            }
            self.out.push(b'"');
            write(self.out, index);
            self.out.push(b'"');
        }
        self.out.push(b']');
    }

    /// A number member.
    pub(crate) fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(self.out, value);
    }

    /// A boolean member.
    pub(crate) fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// A timestamp member, as Suricata writes them.
    pub(crate) fn timestamp(&mut self, key: &str, timestamp_ns: u64) {
        self.key(key);
        self.out.push(b'"');
        crate::timestamp::push_timestamp(self.out, timestamp_ns);
        self.out.push(b'"');
    }

    /// A timestamp member from its text ([`crate::timestamp::timestamp_text`]).
    pub(crate) fn timestamp_text(&mut self, key: &str, text: &[u8; 31]) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(text);
        self.out.push(b'"');
    }

    /// A member whose value is JSON text written before (by [`Object`]).
    pub(crate) fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.extend_from_slice(json.as_bytes());
    }

    /// A member whose value is `value` serialized by `serde_json`.
    pub(crate) fn value(&mut self, key: &str, value: &serde_json::Value) {
        self.key(key);
        // Serializing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    /// A member with a key from elsewhere (escaped) and a `serde_json`
    /// value.
    pub(crate) fn escaped_key_value(&mut self, key: &str, value: &serde_json::Value) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        push_str(self.out, key);
        self.out.push(b':');
        // Serializing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    /// A nested object member; [`Object::end`] it before using this one again.
    pub(crate) fn object(&mut self, key: &str) -> Object<'_> {
        self.key(key);
        Object::begin(self.out)
    }

    /// Closes the object.
    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        for value in [0, 7, 10, 12_345, u64::MAX] {
            out.clear();
            push_u64(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }

    #[test]
    fn addresses_and_hex_bytes_are_written_as_display_and_format_write_them() {
        let mut addresses: Vec<IpAddr> = ["0.0.0.0", "255.255.255.255", "10.0.9.100", "172.17.0.2", "1.22.103.99"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        addresses.extend(
            ["::", "::1", "fe80::1:2", "::ffff:10.1.2.3", "2001:db8::8:800:200c:417a"]
                .map(|a| a.parse::<IpAddr>().unwrap()),
        );
        for octet in 0..=255u8 {
            addresses.push(IpAddr::from([octet, octet / 3, 255 - octet, octet / 10]));
        }
        for address in addresses {
            let mut out = Vec::new();
            push_ip(&mut out, address);
            assert_eq!(out, address.to_string().as_bytes());
        }
        for value in 0..=255u8 {
            let mut out = Vec::new();
            push_hex_byte(&mut out, value);
            assert_eq!(out, format!("{value:02x}").as_bytes());
        }
    }

    #[test]
    fn strings_with_anything_in_them_parse_back() {
        for text in [
            "veth0",
            "quo\"te",
            "back\\slash",
            "ctl\u{1}\u{1f}\n\t\r\u{8}\u{c}",
            "ünï€😀",
            "",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, text);
            let parsed: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(parsed, text);
        }
    }

    #[test]
    fn objects_keep_the_order_members_were_added_in() {
        let mut out = Vec::new();
        let mut object = Object::begin(&mut out);
        object.str("b", "x");
        object.u64("a", 1);
        let mut inner = object.object("c");
        inner.bool("t", true);
        inner.str_array_with("l", 2, |out, index| push_str_content(out, ["p", "q\""][index]));
        inner.end();
        object.display_str("ip", std::net::Ipv4Addr::new(10, 0, 0, 1));
        object.value("v", &serde_json::json!({"k": [1, null]}));
        object.timestamp("ts", 0);
        object.end();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"b":"x","a":1,"c":{"t":true,"l":["p","q\""]},"ip":"10.0.0.1","v":{"k":[1,null]},"ts":"1970-01-01T00:00:00.000000+0000"}"#
        );
        let _: serde_json::Value = serde_json::from_str(&text).unwrap();
    }
}
