//! The reader's only buffer: one reused allocation that holds a window of the
//! file, refilled by large reads, so every record is parsed in place and a
//! packet is handed out as a slice of it. It knows nothing of formats; it only
//! guarantees that a requested number of bytes lie contiguously at the read
//! position, or says the file ended first.
//!
//! Invariant: `pos <= end <= buf.len()`, and `buf[pos..end]` are the file's
//! bytes from offset `base + pos` on. Bytes before `pos` are consumed and may
//! be overwritten by the next [`Input::fill`].

use std::io::{self, Read};

/// Size of the buffer and of each read: large enough that the cost of a
/// `read` call and of moving a partial record to the front vanish per packet.
pub(crate) const BUFFER_LEN: usize = 1 << 20;

/// A window of the file over one reused buffer.
pub(crate) struct Input {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Next unconsumed byte.
    pos: usize,
    /// End of the valid bytes.
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// The reader returned 0: no more bytes will come.
    eof: bool,
}

impl Input {
    pub(crate) fn new(reader: Box<dyn Read + Send>) -> Self {
        Self {
            reader,
            buf: vec![0; BUFFER_LEN],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
        }
    }

    /// File offset of the read position.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes at least `need` bytes available at the read position, reading
    /// and moving the window as needed, and returns how many are available:
    /// fewer than `need` only when the file ended.
    #[inline]
    pub(crate) fn fill(&mut self, need: usize) -> io::Result<usize> {
        if self.end - self.pos >= need {
            return Ok(self.end - self.pos);
        }
        self.refill(need)
    }

    /// [`Input::fill`] when the buffered bytes do not suffice.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, need: usize) -> io::Result<usize> {
        if self.pos + need > self.buf.len() {
            // Move the partial record to the front.
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < need && !self.eof {
            if self.end == self.buf.len() {
                // A record larger than the buffer (bounded by the callers'
                // length checks): grow by doubling as its bytes arrive, not
                // to the length the file claims up front, so a short file
                // with a huge length field costs no more memory than it has
                // bytes.
                let grown = (self.buf.len() * 2).min(need.next_power_of_two());
                self.buf.resize(grown, 0);
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(read) => self.end += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(self.end - self.pos)
    }

    /// Buffer index of the read position, for [`Input::bytes`].
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The buffered bytes `start..start + len`, by buffer index. Valid until
    /// the next [`Input::fill`].
    ///
    /// Panics if the range is not buffered; callers ask only for ranges a
    /// successful `fill` made available.
    #[inline]
    pub(crate) fn bytes(&self, start: usize, len: usize) -> &[u8] {
        &self.buf[start..start + len]
    }

    /// Consumes `len` bytes, which a successful [`Input::fill`] made
    /// available.
    pub(crate) fn consume(&mut self, len: usize) {
        debug_assert!(self.pos + len <= self.end);
        self.pos += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `chunk` bytes per call, like a pipe.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.chunk).min(self.bytes.len() - self.at);
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn fill_moves_the_window_and_keeps_offsets() {
        let bytes: Vec<u8> = (0..3 * BUFFER_LEN + 17).map(|i| (i % 251) as u8).collect();
        let total = bytes.len();
        let mut input = Input::new(Box::new(Trickle {
            bytes,
            at: 0,
            chunk: 4093,
        }));
        let mut offset = 0usize;
        let mut step = 1usize;
        while offset < total {
            let want = step.min(total - offset);
            assert!(input.fill(want).unwrap() >= want);
            assert_eq!(input.offset(), offset as u64);
            let got = input.bytes(input.pos(), want);
            for (i, b) in got.iter().enumerate() {
                assert_eq!(*b, ((offset + i) % 251) as u8);
            }
            input.consume(want);
            offset += want;
            step = step * 7 % 300_001 + 1;
        }
        assert_eq!(input.fill(1).unwrap(), 0);
    }

    /// Regression (found by the `capture_file` fuzz target): a 28-byte file
    /// whose block claims 256 MiB made `fill` allocate and zero 256 MiB
    /// before finding out the file ends, about 0.1 s and 256 MiB per such
    /// file. The buffer now grows only as bytes arrive.
    #[test]
    fn a_length_the_file_does_not_back_allocates_nothing() {
        let mut input = Input::new(Box::new(io::Cursor::new(vec![1u8; 100])));
        assert_eq!(input.fill(256 << 20).unwrap(), 100);
        assert_eq!(input.buf.len(), BUFFER_LEN);
        // A record a little larger than the buffer, in a file that holds
        // only part of it more: one doubling, not the claimed size.
        let mut input = Input::new(Box::new(io::Cursor::new(vec![2u8; BUFFER_LEN + 10])));
        assert_eq!(input.fill(200 << 20).unwrap(), BUFFER_LEN + 10);
        assert_eq!(input.buf.len(), 2 * BUFFER_LEN);
    }

    #[test]
    fn fill_grows_for_a_record_larger_than_the_buffer() {
        let bytes = vec![7u8; BUFFER_LEN * 2 + 5];
        let mut input = Input::new(Box::new(io::Cursor::new(bytes)));
        input.fill(3).unwrap();
        input.consume(3);
        assert!(input.fill(BUFFER_LEN * 2).unwrap() >= BUFFER_LEN * 2);
        assert_eq!(input.bytes(input.pos(), BUFFER_LEN * 2), &vec![7u8; BUFFER_LEN * 2][..]);
        assert_eq!(input.offset(), 3);
    }
}
