//! Memory advice for the engine's large tables: backing them with
//! transparent huge pages, which spares a TLB miss (a page walk, costly in a
//! VM) on nearly every random access. Measured on the dedup table with 1 M
//! live packets (4 Mi entries, 256 MiB): a third less time per copy
//! (BENCHMARKS.md). The kernel's default is often `madvise`
//! (`/sys/kernel/mm/transparent_hugepage/enabled`): only advised ranges get
//! huge pages, so the tables ask for them here.

use crate::sys::{syscall, Syscall, SyscallError};

/// A transparent huge page on x86-64 and arm64 with 4 KiB pages.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Advises the kernel to back the whole 2 MiB pages inside `[addr, addr +
/// len)` with transparent huge pages. Call it on memory not yet touched:
/// pages faulted in later are then huge pages at once (others wait for
/// khugepaged). Ranges holding no whole huge page are left alone. The
/// advice never changes the memory's contents.
pub fn advise_huge_pages(addr: usize, len: usize) -> Result<(), SyscallError> {
    let start = addr.next_multiple_of(HUGE_PAGE_BYTES);
    let end = (addr.saturating_add(len) / HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
    if end <= start {
        return Ok(());
    }
    syscall(Syscall::AdviseHugePages {
        addr: start,
        len: end - start,
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_allocation_is_advised_and_small_ranges_are_left_alone() {
        let buffer: Vec<u64> = Vec::with_capacity(4 * HUGE_PAGE_BYTES / 8);
        let addr = buffer.as_ptr() as usize;
        advise_huge_pages(addr, 4 * HUGE_PAGE_BYTES).expect("madvise on our own allocation");
        advise_huge_pages(addr, 4096).expect("no whole huge page: nothing to do");
        let err = advise_huge_pages(HUGE_PAGE_BYTES, HUGE_PAGE_BYTES).unwrap_err();
        assert_eq!(err.call, "madvise(MADV_HUGEPAGE)");
    }
}
