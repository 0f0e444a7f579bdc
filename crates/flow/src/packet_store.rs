//! [`PacketStore`]: the bytes of packets kept for a while, in large reused
//! chunks instead of one allocation each. The dedup engine
//! ([`crate::sieve`]) keeps there the copies it holds until the preferred
//! copy arrives or the window passes; offline, delivered copies wait there
//! for their turn in the output order; in a worker, the pipeline's reorder
//! keeps there the packets it holds to put them in timestamp order.
//!
//! Packets go in at the end of the open chunk and come out roughly in the
//! order they went in (every user releases by timestamp, which is nearly
//! the order of arrival), so a chunk empties soon after it fills and is
//! filled again from its start: no allocation, free or page fault per
//! packet, where a `Vec` per packet from a pool of mixed sizes cost a
//! `malloc` or `realloc` for most packets (a small pooled buffer given a
//! large packet) and a `free` for most (the pool overflowing after a burst).
//!
//! A packet larger than a chunk gets an allocation of its own, freed when
//! it is released; so does every packet while the chunks holding memory
//! are at the store's limit ([`PacketStore::with_limit`]), so that packets
//! released far out of order, each pinning a chunk, cost at most the limit
//! beyond their own bytes. Memory is the chunks that still hold a packet,
//! the emptied ones kept for reuse (at most [`KEPT_EMPTY_CHUNKS`]), and
//! the packets stored on their own.

/// Bytes per chunk: about 170 packets of the docker-mix bench's mean size,
/// small enough that a packet held long pins little memory.
pub const CHUNK_BYTES: usize = 64 << 10;
/// Emptied chunks kept for reuse; past this their memory is freed.
pub const KEPT_EMPTY_CHUNKS: usize = 1024;

/// Where a stored packet's bytes are: give it back to
/// [`PacketStore::bytes`] and, once done, [`PacketStore::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBytes {
    chunk: u32,
    start: u32,
    len: u32,
}

impl StoredBytes {
    /// How many bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One chunk: its bytes and how many stored packets are still in it.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    live: u32,
    /// It holds one packet in an allocation of its own (the packet's size),
    /// not [`CHUNK_BYTES`].
    own: bool,
}

/// Packet bytes in reused chunks; see the module documentation.
pub struct PacketStore {
    /// Every chunk made, by index; the empty ones are in `kept` or `bare`.
    chunks: Vec<Chunk>,
    /// The chunk being filled.
    open: Option<u32>,
    /// Emptied chunks that keep their memory, to fill again.
    kept: Vec<u32>,
    /// Emptied chunks without memory (indexes to use again).
    bare: Vec<u32>,
    /// Chunks of [`CHUNK_BYTES`] that have their memory (in use or kept),
    /// and the most there may be.
    with_memory: usize,
    max_with_memory: usize,
}

impl Default for PacketStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PacketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketStore")
            .field("chunks", &self.chunks.len())
            .field("with_memory", &self.with_memory)
            .field("kept", &self.kept.len())
            .finish_non_exhaustive()
    }
}

impl PacketStore {
    /// A store without a limit; chunks are made as packets come.
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// A store whose chunks take at most about `limit_bytes` (at least one
    /// chunk); past it packets are stored each on its own.
    pub fn with_limit(limit_bytes: usize) -> Self {
        Self {
            chunks: Vec::new(),
            open: None,
            kept: Vec::new(),
            bare: Vec::new(),
            with_memory: 0,
            max_with_memory: (limit_bytes / CHUNK_BYTES).max(1),
        }
    }

    /// Copies `data` in.
    #[inline]
    pub fn store(&mut self, data: &[u8]) -> StoredBytes {
        let len = data.len();
        if let Some(open) = self.open {
            let entry = &mut self.chunks[open as usize];
            if entry.bytes.len() + len <= CHUNK_BYTES {
                let start = entry.bytes.len();
                entry.bytes.extend_from_slice(data);
                entry.live += 1;
                return StoredBytes {
                    chunk: open,
                    start: start as u32,
                    len: len as u32,
                };
            }
        }
        self.store_in_new_chunk(data)
    }

    /// [`PacketStore::store`] when the open chunk has no room. (An open
    /// chunk that empties starts over, so it has room for any packet up
    /// to [`CHUNK_BYTES`]: the one it replaces still holds a packet.)
    #[cold]
    #[inline(never)]
    fn store_in_new_chunk(&mut self, data: &[u8]) -> StoredBytes {
        let len = data.len();
        let chunk = if len > CHUNK_BYTES {
            None
        } else if let Some(chunk) = self.kept.pop() {
            Some(chunk)
        } else if self.with_memory < self.max_with_memory {
            let chunk = self.bare_chunk();
            self.chunks[chunk as usize].bytes = Vec::with_capacity(CHUNK_BYTES);
            self.with_memory += 1;
            Some(chunk)
        } else {
            None
        };
        let (chunk, own) = match chunk {
            Some(chunk) => {
                self.open = Some(chunk);
                (chunk, false)
            }
            None => (self.bare_chunk(), true),
        };
        let entry = &mut self.chunks[chunk as usize];
        if own {
            // On its own, exactly its size.
            entry.bytes = data.to_vec();
        } else {
            entry.bytes.extend_from_slice(data);
        }
        entry.own = own;
        entry.live = 1;
        StoredBytes {
            chunk,
            start: 0,
            len: len as u32,
        }
    }

    /// The bytes of `stored`, which must not have been released.
    #[inline]
    pub fn bytes(&self, stored: StoredBytes) -> &[u8] {
        let start = stored.start as usize;
        &self.chunks[stored.chunk as usize].bytes[start..start + stored.len as usize]
    }

    /// Done with `stored`: its chunk is emptied once nothing in it is
    /// still stored. Each stored packet is released once.
    #[inline]
    pub fn release(&mut self, stored: StoredBytes) {
        let entry = &mut self.chunks[stored.chunk as usize];
        debug_assert!(entry.live > 0, "a packet released twice");
        entry.live -= 1;
        if entry.live > 0 {
            return;
        }
        if self.open == Some(stored.chunk) {
            // Still the one being filled: filled again from its start.
            entry.bytes.clear();
            return;
        }
        if entry.own {
            entry.bytes = Vec::new();
            entry.own = false;
            self.bare.push(stored.chunk);
        } else if self.kept.len() >= KEPT_EMPTY_CHUNKS {
            entry.bytes = Vec::new();
            self.with_memory -= 1;
            self.bare.push(stored.chunk);
        } else {
            entry.bytes.clear();
            self.kept.push(stored.chunk);
        }
    }

    /// Chunks of [`CHUNK_BYTES`] that hold memory, in use or kept empty.
    pub fn chunks_with_memory(&self) -> usize {
        self.with_memory
    }

    /// A chunk without memory: an emptied one, or a new one.
    fn bare_chunk(&mut self) -> u32 {
        self.bare.pop().unwrap_or_else(|| {
            self.chunks.push(Chunk::default());
            (self.chunks.len() - 1) as u32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (seed * 31 + i) as u8).collect()
    }

    #[test]
    fn stored_bytes_come_back_intact_whatever_the_release_order() {
        let mut store = PacketStore::new();
        let sizes = [60, 1514, 0, 9000, 70_000, 40, 65_536, 65_537, 1];
        let mut stored = Vec::new();
        for round in 0..50 {
            for (i, &len) in sizes.iter().enumerate() {
                let seed = round * sizes.len() + i;
                stored.push((seed, len, store.store(&packet(seed, len))));
            }
            // Release every third, oldest first, and check the rest.
            let mut kept = Vec::new();
            for (n, entry) in stored.drain(..).enumerate() {
                if n % 3 == 0 {
                    assert_eq!(store.bytes(entry.2), &packet(entry.0, entry.1)[..]);
                    store.release(entry.2);
                } else {
                    kept.push(entry);
                }
            }
            stored = kept;
            for &(seed, len, at) in &stored {
                assert_eq!(at.len(), len);
                assert_eq!(store.bytes(at), &packet(seed, len)[..], "packet {seed}");
            }
        }
        // Newest first.
        while let Some((seed, len, at)) = stored.pop() {
            assert_eq!(store.bytes(at), &packet(seed, len)[..]);
            store.release(at);
        }
    }

    #[test]
    fn chunks_are_reused_once_emptied() {
        let mut store = PacketStore::new();
        let data = packet(1, 1000);
        let mut held = std::collections::VecDeque::new();
        // Always about 200 KB held, a FIFO: the chunks in use stay few.
        for _ in 0..10_000 {
            held.push_back(store.store(&data));
            if held.len() > 200 {
                store.release(held.pop_front().unwrap());
            }
        }
        assert!(store.chunks_with_memory() <= 6, "{store:?}");
        assert!(store.chunks.len() <= 6, "{store:?}");
        for at in held.drain(..) {
            assert_eq!(store.bytes(at), &data[..]);
            store.release(at);
        }
    }

    #[test]
    fn a_packet_larger_than_a_chunk_frees_its_memory_when_released() {
        let mut store = PacketStore::new();
        let big = packet(7, CHUNK_BYTES * 3);
        let at = store.store(&big);
        assert_eq!(store.bytes(at), &big[..]);
        store.release(at);
        assert_eq!(store.chunks_with_memory(), 0);
        // Its index is filled again by a normal packet.
        let small = store.store(&packet(2, 10));
        assert_eq!(store.chunks.len(), 1);
        assert_eq!(store.bytes(small), &packet(2, 10)[..]);
    }

    #[test]
    fn the_open_chunk_fills_again_from_its_start_once_empty() {
        let mut store = PacketStore::new();
        let a = store.store(&packet(1, 100));
        store.release(a);
        let b = store.store(&packet(2, 100));
        assert_eq!(b.start, 0);
        assert_eq!(b.chunk, a.chunk);
        assert_eq!(store.bytes(b), &packet(2, 100)[..]);
    }

    #[test]
    fn past_the_limit_packets_are_stored_on_their_own() {
        let mut store = PacketStore::with_limit(4 * CHUNK_BYTES);
        let stored: Vec<(usize, StoredBytes)> = (0..2000).map(|i| (i, store.store(&packet(i, 1000)))).collect();
        // 2000 KB held, 4 chunks of 64 KiB hold 256 of them.
        assert_eq!(store.chunks_with_memory(), 4);
        for &(i, at) in &stored {
            assert_eq!(store.bytes(at), &packet(i, 1000)[..]);
        }
        for &(_, at) in &stored {
            store.release(at);
        }
        // Every chunk is empty: the next packets fill them again.
        let again = store.store(&packet(1, 1000));
        assert_eq!(store.bytes(again), &packet(1, 1000)[..]);
        assert_eq!(store.chunks_with_memory(), 4);
    }

    #[test]
    fn emptied_chunks_kept_are_bounded() {
        let mut store = PacketStore::new();
        let data = packet(3, CHUNK_BYTES);
        // Each packet fills a chunk: KEPT_EMPTY_CHUNKS + 10 chunks at once.
        let all: Vec<StoredBytes> = (0..KEPT_EMPTY_CHUNKS + 10).map(|_| store.store(&data)).collect();
        for at in all {
            store.release(at);
        }
        // The open one keeps its memory too.
        assert_eq!(store.chunks_with_memory(), KEPT_EMPTY_CHUNKS + 1);
    }
}
