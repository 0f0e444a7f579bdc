//! Big-endian reads at fixed offsets, shared by the views. Callers have
//! checked the length (the panic contract of the crate); these only spell
//! out the byte order. Each read is one bounds check and one load.

/// The `N` bytes at `bytes[at..at + N]`.
#[inline(always)]
pub(crate) fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// The big-endian `u16` at `bytes[at..at + 2]`.
#[inline(always)]
pub(crate) fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array_at(bytes, at))
}

/// The big-endian `u32` at `bytes[at..at + 4]`.
#[inline(always)]
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array_at(bytes, at))
}
