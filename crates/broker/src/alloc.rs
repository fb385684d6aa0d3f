//! The process's global allocator: the system allocator, except that absurdly large requests
//! (>= 1 GiB) are served by `mmap(MAP_NORESERVE)` instead of failing.
//!
//! Why: kafka-protocol 0.17 decodes an array by calling `Vec::with_capacity(count)` with the
//! count read from the wire before reading any element (upstream kafka-protocol-rs PRs #152,
//! #161, #200, open). A 20-byte request claiming 2^31 topics asks for ~200 GB; the system
//! allocator fails and Rust *aborts* the whole broker — one malformed frame would kill it. With
//! MAP_NORESERVE such a reservation succeeds as untouched virtual memory (Linux does not count it
//! under the default heuristic overcommit), the decoder then fails on the missing bytes with an
//! ordinary error, and the mapping is released. Legitimate allocations never get near 1 GiB (a request is at most --max-request-bytes,
//! 100 MiB by default). The fuzzer found a 20-byte Fetch that asked for 2.5 GiB, which the
//! system allocator would give or refuse depending on the machine's memory and overcommit
//! policy; from 1 GiB up nothing depends on that.
//!
//! Owns: nothing but that size switch. Must not: change behaviour for normal-sized allocations.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at or above this size go to `mmap`.
const HUGE: usize = 1 << 30;
/// mmap returns page-aligned memory; larger alignments stay with the system allocator.
const PAGE: usize = 4096;

pub struct GuardedAlloc;

fn huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every pointer handed out comes from `System` or from `map`, and is returned to the
// matching one: the choice depends only on the layout, which callers pass back unchanged.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if huge(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if huge(&layout) {
            unsafe { map(layout.size()) } // anonymous mappings are zero-filled
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if huge(&layout) {
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded to `layout.align()`, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !huge(&layout) && !huge(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static GLOBAL: GuardedAlloc = GuardedAlloc;

#[cfg(test)]
mod tests {
    #[test]
    fn an_absurd_capacity_is_reserved_not_fatal() {
        // 2^31 elements of 100 bytes: what a malicious array count asks for.
        let v: Vec<[u8; 100]> = Vec::with_capacity(1 << 31);
        assert!(v.capacity() >= 1 << 31);
        let mut w: Vec<u64> = Vec::with_capacity(16);
        w.extend(0..1000);
        assert_eq!(w.iter().sum::<u64>(), 499_500);
    }
}
