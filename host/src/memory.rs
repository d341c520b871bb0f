//! Giving memory back to the system after a burst of allocation.
//!
//! Compiling a component allocates hundreds of megabytes in Cranelift (a
//! JavaScript engine's ~10 MB component took the host from 64 MiB to about
//! 220 MiB resident) and frees nearly all of it at the end. The binary's
//! allocator (mimalloc, see `allocator.rs` in the binary) returns freed pages
//! only when the thread that owns them allocates or frees again, and a
//! compile's threads go idle right after: without a collection that memory
//! stays resident for the host's life.

// The allocator's library, linked into the library too so that `mi_collect`
// resolves in its tests; the binary is what installs it as the allocator.
extern crate mimalloc as _;

extern "C" {
    /// mimalloc's eager collection: frees what the calling thread's heap
    /// holds and, with `force`, purges abandoned and arena memory.
    fn mi_collect(force: bool);
}

/// Returns freed memory to the system, after a large transient allocation
/// (a compile) ends: on the calling thread and on every thread of rayon's
/// global pool, where wasmtime compiles functions in parallel.
pub fn release_freed() {
    // SAFETY: mi_collect only walks the allocator's own structures; it is
    // safe to call at any time from any thread.
    rayon::broadcast(|_| unsafe { mi_collect(true) });
    // SAFETY: as above.
    unsafe { mi_collect(true) }
}
