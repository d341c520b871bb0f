//! The host's allocator: mimalloc, with settings that keep its footprint
//! near glibc's.
//!
//! Why mimalloc: a data API read makes hundreds of small allocations across
//! threads (wasmtime's store, hyper, tokio-postgres), and glibc's arena
//! locks and consolidation took about 11% of a loaded host's CPU; one-row
//! GETs ran 9-19% faster A/B. Why the settings: mimalloc's defaults back
//! arenas with transparent huge pages, commit them eagerly and return freed
//! pages 10 ms later, which on a mostly idle host means never (idle RSS 139
//! MiB against glibc's 51). With them it is about 49 MiB, at no measured
//! throughput cost. They must be in place before mimalloc maps its first
//! arena, which happens on the process's first allocation, before `main`:
//! hence the wrapper rather than a call at the top of `main`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Allocator;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

// Option numbers of `mi_option_e` in mimalloc 3.3's mimalloc.h (the version
// libmimalloc-sys 0.1.49 builds, pinned in Cargo.lock); the Rust crate
// exports only the older v2 numbering.
const ARENA_EAGER_COMMIT: libc::c_int = 4;
const PURGE_DELAY: libc::c_int = 15;
const ALLOW_THP: libc::c_int = 43;

extern "C" {
    fn mi_option_set(option: libc::c_int, value: libc::c_long);
}

#[inline]
fn configure_once() {
    if !CONFIGURED.load(Ordering::Relaxed) {
        // SAFETY: mi_option_set only stores an option value. Racing first
        // allocations on several threads would each store the same values.
        unsafe {
            mi_option_set(ALLOW_THP, 0);
            mi_option_set(ARENA_EAGER_COMMIT, 0);
            mi_option_set(PURGE_DELAY, 0);
        }
        CONFIGURED.store(true, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to mimalloc's GlobalAlloc.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        configure_once();
        // SAFETY: the caller's guarantees, passed on unchanged.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        configure_once();
        // SAFETY: the caller's guarantees, passed on unchanged.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees, passed on unchanged.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on unchanged.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}
