//! The keyed 64-bit hash behind packet identities ([`crate::identity`]): a
//! [`Hasher`] whose keys are drawn at random at start-up (or fixed, for
//! tests and reproducible runs), fast on the long byte strings a packet
//! identity covers (every payload byte). Not a cryptographic hash and not a
//! MAC: like `ahash`'s portable fallback, which it replaces on this path, it
//! keeps traffic that does not know the keys from aiming at buckets or
//! building collisions, nothing more.
//!
//! The mixing step is the folded multiply of wyhash and rapidhash (the
//! 128-bit product of two 64-bit words, its halves XORed). Byte strings go
//! through three independent lanes of 16 bytes per step (48 bytes a round,
//! about 0.45 instructions per byte against 0.8 for `ahash`'s fallback,
//! whose single lane takes 16 bytes a step), then 16 bytes at a time, then
//! a tail of up to 16 bytes read as two overlapping words; the length goes
//! in first, so two strings of different lengths never hash alike by their
//! padding. Integers written one by one ([`Hasher::write_u32`]...) are one
//! folded multiply each.

use std::hash::Hasher;

/// Random or fixed keys for [`KeyedHasher`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashKeys {
    keys: [u64; 4],
}

impl std::fmt::Debug for HashKeys {
    /// Never the keys themselves: a log line must not give them away.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashKeys").finish_non_exhaustive()
    }
}

impl HashKeys {
    /// Keys drawn at random (from `ahash`'s per-process random source).
    pub(crate) fn random() -> Self {
        let state = ahash::RandomState::new();
        Self::from_seeds([0u64, 1, 2, 3].map(|i| state.hash_one(i)))
    }

    /// Fixed keys (tests, reproducible runs). Every key is made odd and
    /// non-zero so no multiply by a key loses the other operand.
    pub(crate) fn from_seeds(seeds: [u64; 4]) -> Self {
        // Spread small seeds (1, 2, 3, 4) over all 64 bits first.
        let keys = seeds.map(|s| fold(s ^ 0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344 | 1) | 1);
        Self { keys }
    }

    /// A hasher with these keys, in its initial state.
    pub(crate) fn hasher(&self) -> KeyedHasher<'_> {
        KeyedHasher {
            keys: &self.keys,
            acc: self.keys[0],
        }
    }
}

/// The 128-bit product of `a` and `b`, its two halves XORed.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The little-endian word at `bytes[at..at + 8]`.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The little-endian half word at `bytes[at..at + 4]`.
#[inline(always)]
fn half_word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// The state of one hash: see the module docs. The keys are borrowed, not
/// copied: a copy of them in each hasher went through the stack, for every
/// packet identity.
#[derive(Clone)]
pub(crate) struct KeyedHasher<'k> {
    keys: &'k [u64; 4],
    acc: u64,
}

impl KeyedHasher<'_> {
    #[inline(always)]
    fn absorb(&mut self, value: u64) {
        self.acc = fold(self.acc ^ value, self.keys[1]);
    }
}

impl Hasher for KeyedHasher<'_> {
    #[inline]
    fn finish(&self) -> u64 {
        fold(self.acc ^ self.keys[2], self.keys[3])
    }

    // Inlined: an identity calls it once or twice, and as a call its
    // state went through the stack (about 15 instructions a call).
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        let [_, k1, k2, k3] = *self.keys;
        let mut seed = fold(self.acc ^ bytes.len() as u64, k3);
        let mut rest = bytes;
        if rest.len() > 48 {
            let (mut a, mut b, mut c) = (seed, seed ^ k2, seed ^ k3);
            while rest.len() > 48 {
                a = fold(word(rest, 0) ^ k1, word(rest, 8) ^ a);
                b = fold(word(rest, 16) ^ k2, word(rest, 24) ^ b);
                c = fold(word(rest, 32) ^ k3, word(rest, 40) ^ c);
                rest = &rest[48..];
            }
            seed = a ^ b ^ c;
        }
        while rest.len() > 16 {
            seed = fold(word(rest, 0) ^ k1, word(rest, 8) ^ seed);
            rest = &rest[16..];
        }
        // 0 to 16 bytes left, covered by two (possibly overlapping) reads:
        // with the length already in, no two tails read alike.
        let n = rest.len();
        let (x, y) = match n {
            0 => (0, 0),
            1..=3 => (
                u64::from(rest[0]) << 16 | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]),
                0,
            ),
            4..=7 => (half_word(rest, 0), half_word(rest, n - 4)),
            _ => (word(rest, 0), word(rest, n - 8)),
        };
        self.acc = fold(x ^ k2, y ^ seed);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.absorb(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.absorb(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.absorb(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.absorb(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.absorb(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn hash(keys: &HashKeys, bytes: &[u8]) -> u64 {
        let mut h = keys.hasher();
        h.write(bytes);
        h.finish()
    }

    #[test]
    fn every_length_and_every_single_bit_flip_hashes_apart() {
        let keys = HashKeys::from_seeds([1, 2, 3, 4]);
        let base: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        let mut seen = HashSet::new();
        for len in 0..=base.len() {
            assert!(seen.insert(hash(&keys, &base[..len])), "length {len}");
        }
        for len in [1, 3, 5, 8, 15, 16, 17, 47, 48, 49, 96, 97, 200] {
            for byte in 0..len {
                for bit in 0..8 {
                    let mut changed = base[..len].to_vec();
                    changed[byte] ^= 1 << bit;
                    assert!(
                        seen.insert(hash(&keys, &changed)),
                        "length {len}, byte {byte}, bit {bit}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_strings_of_different_lengths_and_keys_differ() {
        let keys = HashKeys::from_seeds([1, 2, 3, 4]);
        let zeros = [0u8; 128];
        let hashes: HashSet<u64> = (0..=zeros.len()).map(|n| hash(&keys, &zeros[..n])).collect();
        assert_eq!(hashes.len(), zeros.len() + 1);
        let other = HashKeys::from_seeds([1, 2, 3, 5]);
        assert_ne!(hash(&keys, b"packet"), hash(&other, b"packet"));
        assert_ne!(HashKeys::random(), HashKeys::random());
    }

    #[test]
    fn integers_written_in_another_order_hash_apart() {
        let keys = HashKeys::from_seeds([9, 8, 7, 6]);
        let mut a = keys.hasher();
        a.write_u32(1);
        a.write_u32(2);
        let mut b = keys.hasher();
        b.write_u32(2);
        b.write_u32(1);
        assert_ne!(a.finish(), b.finish());
    }
}
