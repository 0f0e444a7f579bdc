//! Evaluation of a rule's payload elements (content, pcre, byte_test,
//! byte_jump, isdataat) against one buffer, with Suricata's relative
//! cursor and backtracking.
//!
//! Each positive content or pcre moves the cursor to the end of its match;
//! `byte_jump` moves it to where it jumps; negated contents, `byte_test`
//! and `isdataat` leave it. When a later relative element fails, the engine
//! backtracks: it retries the previous content (or pcre) at its next
//! occurrence in its window, as Suricata does for distance/within chains.
//! The number of steps per evaluation is capped (Suricata's
//! `inspection-recursion-limit`, 3000 by default), so a rule cannot make a
//! packet cost more than that.
//!
//! Buffers have a base: the stream offset of their first byte (0 for a
//! packet). Absolute positions (`offset`, `depth`, absolute `byte_test`,
//! `isdataat`, `from_beginning`) count from the start of the stream, so a
//! `depth:3` content only ever matches the first three bytes of a stream;
//! relative ones count from the cursor. In stream mode a match must also
//! end past a given position (the first byte not inspected before, or the
//! end of the rule's last match) so that bytes kept from the previous chunk
//! never raise the same match twice. A match ends at the furthest byte it
//! needed: its contents and pcres, the bytes a `byte_test` or `byte_jump`
//! read, the byte a (non-negated) `isdataat` asked for; so a match whose
//! last bytes arrive in a later segment is found when they do.

use crate::rule::{ByteJump, ByteOp, ByteTest, Content, NumberFormat, PayloadElem};

/// The default cap on evaluation steps per rule and buffer.
pub const DEFAULT_INSPECTION_LIMIT: u32 = 3000;

/// One evaluation.
pub(crate) struct Inspection<'a> {
    pub(crate) buf: &'a [u8],
    /// The stream offset of `buf[0]`.
    pub(crate) base: u64,
    /// In stream mode, the buffer index a match must end after.
    pub(crate) min_end: Option<usize>,
    /// In stream mode, whether more data may follow the buffer (and the
    /// rule's match fits the stream window, so it can be found again): a
    /// negated relative content whose `within` reaches past the buffer
    /// end, or a negated relative `isdataat` not satisfied by the buffer,
    /// is then undecided.
    pub(crate) open: bool,
    /// Set when a match was not decided because of [`Self::open`].
    pub(crate) undecided: bool,
    /// Steps left.
    pub(crate) budget: u32,
    /// Set when the budget ran out.
    pub(crate) exhausted: bool,
}

impl Inspection<'_> {
    /// Runs the chain; the buffer index where the match ends, or `None`.
    pub(crate) fn run(&mut self, elems: &[PayloadElem]) -> Option<usize> {
        let positive = elems.iter().any(|e| match e {
            PayloadElem::Content(c) => !c.negated,
            PayloadElem::Pcre(p) => !p.negated,
            PayloadElem::ByteJump(_) => true,
            _ => false,
        });
        // A chain that matches nothing positive "ends" at the buffer end.
        let initial_end = if positive { 0 } else { self.buf.len() };
        self.step(elems, 0, 0, initial_end)
    }

    /// Converts a stream offset into a buffer index (may be negative or
    /// past the end).
    fn abs(&self, stream_pos: i64) -> i64 {
        stream_pos - self.base as i64
    }

    /// Whether element `i`'s alternatives matter: a later element is
    /// relative, or stream mode needs the match to end late enough.
    fn must_retry(&self, elems: &[PayloadElem], i: usize) -> bool {
        self.min_end.is_some() || elems[i + 1..].iter().any(PayloadElem::is_relative)
    }

    fn step(&mut self, elems: &[PayloadElem], i: usize, cursor: usize, max_end: usize) -> Option<usize> {
        if self.budget == 0 {
            self.exhausted = true;
            return None;
        }
        self.budget -= 1;
        let Some(elem) = elems.get(i) else {
            return match self.min_end {
                Some(min) if max_end <= min => None,
                _ => Some(max_end),
            };
        };
        let len = self.buf.len() as i64;
        match elem {
            PayloadElem::Content(c) => {
                let (start, end) = self.content_window(c, cursor);
                let n = c.pattern.len() as i64;
                if c.negated {
                    let found = end - start >= n && self.find_in(c, start as usize, end as usize).is_some();
                    if found {
                        return None;
                    }
                    // A bounded window is part of the match: it is decided
                    // once all of it is there, and then ends the match no
                    // earlier than it does. Past the data, it waits for
                    // more if it may; else it is decided on what there is
                    // (and does not move the end, so a later chunk does
                    // not raise the same match again).
                    let max_end = match self.bounded_window_end(c, cursor) {
                        Some(reach) if reach > len && self.open => {
                            self.undecided = true;
                            return None;
                        }
                        Some(reach) if reach <= len => max_end.max(reach.max(0) as usize),
                        _ => max_end,
                    };
                    return self.step(elems, i + 1, cursor, max_end);
                }
                let mut from = start;
                while end - from >= n {
                    let p = self.find_in(c, from as usize, end as usize)? as i64;
                    let m_end = (p + n) as usize;
                    if let Some(r) = self.step(elems, i + 1, m_end, max_end.max(m_end)) {
                        return Some(r);
                    }
                    if self.exhausted || !self.must_retry(elems, i) {
                        return None;
                    }
                    from = p + 1;
                }
                None
            }
            PayloadElem::Pcre(p) => {
                let start = if p.relative { cursor } else { 0 };
                let hay = &self.buf[start.min(self.buf.len())..];
                if p.negated {
                    return if p.regex.is_match(hay) {
                        None
                    } else {
                        self.step(elems, i + 1, cursor, max_end)
                    };
                }
                let mut at = 0;
                while at <= hay.len() {
                    let m = p.regex.find_at(hay, at)?;
                    let m_end = start + m.end();
                    if let Some(r) = self.step(elems, i + 1, m_end, max_end.max(m_end)) {
                        return Some(r);
                    }
                    if self.exhausted || !self.must_retry(elems, i) {
                        return None;
                    }
                    at = m.start() + 1;
                }
                None
            }
            PayloadElem::ByteTest(b) => {
                let pos = if b.relative {
                    cursor as i64 + i64::from(b.offset)
                } else {
                    self.abs(i64::from(b.offset))
                };
                if byte_test(b, self.buf, pos)? {
                    // The bytes read are part of the match: in stream mode
                    // it ends no earlier than they do.
                    let read_end = (pos + b.nbytes as i64) as usize;
                    self.step(elems, i + 1, cursor, max_end.max(read_end))
                } else {
                    None
                }
            }
            PayloadElem::ByteJump(b) => {
                let pos = if b.relative {
                    cursor as i64 + i64::from(b.offset)
                } else {
                    self.abs(i64::from(b.offset))
                };
                let to = self.byte_jump(b, pos)?;
                let read_end = (pos + b.nbytes as i64) as usize;
                self.step(elems, i + 1, to, max_end.max(to).max(read_end))
            }
            PayloadElem::IsDataAt(d) => {
                // The buffer end that has the data asked for.
                let needed_end = if d.relative {
                    cursor as i64 + i64::from(d.n)
                } else {
                    self.abs(i64::from(d.n)) + 1
                };
                let present = needed_end <= len;
                if present && !d.negated {
                    // The byte required is part of the match.
                    let needed_end = needed_end.max(0) as usize;
                    self.step(elems, i + 1, cursor, max_end.max(needed_end))
                } else if present != d.negated {
                    // Negated and absent: more data may still bring it.
                    if self.open && d.relative {
                        self.undecided = true;
                        return None;
                    }
                    self.step(elems, i + 1, cursor, max_end)
                } else {
                    None
                }
            }
        }
    }

    /// The window `[start, end)` (buffer indexes, clamped) a content may
    /// occupy.
    fn content_window(&self, c: &Content, cursor: usize) -> (i64, i64) {
        let len = self.buf.len() as i64;
        let (start, end) = if c.is_relative() {
            let start = cursor as i64 + i64::from(c.distance.unwrap_or(0));
            let end = c.within.map_or(len, |w| start + i64::from(w));
            (start, end)
        } else {
            let off = i64::from(c.offset.unwrap_or(0));
            let start = self.abs(off);
            let end = c.depth.map_or(len, |d| self.abs(off + i64::from(d)));
            (start, end)
        };
        let (start, end) = (start.max(0), end.min(len));
        if c.endswith {
            // Only an occurrence ending at the buffer end counts.
            let s = len - c.pattern.len() as i64;
            if s >= start && len <= end {
                return (s, len);
            }
            return (0, -1);
        }
        (start, end)
    }

    /// The end (a buffer index, not clamped) of a relative content's
    /// window when `within` bounds it; `None` when it runs to the end of
    /// the data, is absolute (the bytes before it may be gone from the
    /// stream window by the time its end arrives) or `endswith`.
    fn bounded_window_end(&self, c: &Content, cursor: usize) -> Option<i64> {
        if c.endswith || !c.is_relative() {
            return None;
        }
        let start = cursor as i64 + i64::from(c.distance.unwrap_or(0));
        c.within.map(|w| start + i64::from(w))
    }

    /// The first occurrence of `c` inside `[from, to)`.
    fn find_in(&self, c: &Content, from: usize, to: usize) -> Option<usize> {
        c.find(&self.buf[from..to]).map(|p| p + from)
    }

    fn byte_jump(&self, b: &ByteJump, pos: i64) -> Option<usize> {
        let len = self.buf.len() as i64;
        let v = read_at(self.buf, pos, b.nbytes, b.format)?;
        let v = apply_bitmask(v, b.bitmask);
        let mut jump = v.checked_mul(b.multiplier)?;
        if b.align && jump % 4 != 0 {
            jump += 4 - jump % 4;
        }
        let jump = i64::try_from(jump).ok()?;
        let from = if b.from_beginning {
            self.abs(0)
        } else if b.from_end {
            len
        } else {
            pos + b.nbytes as i64
        };
        let to = from.checked_add(jump)?.checked_add(b.post_offset)?;
        (0..=len).contains(&to).then_some(to as usize)
    }
}

fn apply_bitmask(v: u64, mask: Option<u64>) -> u64 {
    match mask {
        Some(m) => (v & m) >> m.trailing_zeros(),
        None => v,
    }
}

/// Runs a byte_test at `pos`; `None` when the bytes are not there or do not
/// convert.
fn byte_test(b: &ByteTest, buf: &[u8], pos: i64) -> Option<bool> {
    let v = apply_bitmask(read_at(buf, pos, b.nbytes, b.format)?, b.bitmask);
    let r = match b.op {
        ByteOp::Lt => v < b.value,
        ByteOp::Gt => v > b.value,
        ByteOp::Eq => v == b.value,
        ByteOp::Le => v <= b.value,
        ByteOp::Ge => v >= b.value,
        ByteOp::And => v & b.value != 0,
        ByteOp::Xor => v ^ b.value != 0,
    };
    Some(r != b.negate)
}

/// Reads `n` bytes at `pos` as a number.
pub(crate) fn read_at(buf: &[u8], pos: i64, n: usize, format: NumberFormat) -> Option<u64> {
    let pos = usize::try_from(pos).ok()?;
    let bytes = buf.get(pos..pos.checked_add(n)?)?;
    match format {
        NumberFormat::Big => Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))),
        NumberFormat::Little => Some(bytes.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))),
        NumberFormat::String(base) => {
            // As strtoull: leading blanks, then the longest run of digits.
            let s = bytes.iter().skip_while(|b| **b == b' ');
            let mut v: u64 = 0;
            let mut digits = 0;
            for b in s {
                let Some(d) = (*b as char).to_digit(base) else { break };
                v = v.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
                digits += 1;
            }
            (digits > 0).then_some(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_formats() {
        let buf = b"\x01\x02\x03\x04 123x";
        assert_eq!(read_at(buf, 0, 2, NumberFormat::Big), Some(0x0102));
        assert_eq!(read_at(buf, 0, 2, NumberFormat::Little), Some(0x0201));
        assert_eq!(read_at(buf, 4, 5, NumberFormat::String(10)), Some(123));
        assert_eq!(read_at(buf, 5, 3, NumberFormat::String(16)), Some(0x123));
        assert_eq!(read_at(buf, 5, 3, NumberFormat::String(8)), Some(0o123));
        assert_eq!(read_at(buf, 8, 1, NumberFormat::String(10)), None);
        assert_eq!(read_at(buf, 8, 2, NumberFormat::Big), None);
        assert_eq!(read_at(buf, -1, 1, NumberFormat::Big), None);
    }
}
