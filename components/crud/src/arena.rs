//! The component's heap. An instance serves one request and is then thrown
//! away with its memory, so reusing freed blocks buys nothing: each
//! allocation takes the next bytes of a static arena, and only the most
//! recent one is freed or resized in place (which is how a `String` or
//! `Vec` being built grows). wasi-libc's dlmalloc was a third of the guest's
//! CPU time on a one-row read. Once the arena is full the system allocator
//! takes over, so a large request is bounded by the memory limit as before,
//! not by the arena.

/// A bump region over `[start, end)`. Addresses are plain integers so the
/// logic is testable on any target.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub struct Bump {
    start: usize,
    end: usize,
    top: usize,
    /// Where the most recent allocation starts.
    last: usize,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl Bump {
    pub const fn new(start: usize, len: usize) -> Self {
        Self {
            start,
            end: start + len,
            top: start,
            last: usize::MAX,
        }
    }

    pub fn owns(&self, address: usize) -> bool {
        (self.start..self.end).contains(&address)
    }

    /// The address of `size` bytes aligned to `align` (a power of two), or
    /// `None` when the region cannot hold them.
    pub fn alloc(&mut self, size: usize, align: usize) -> Option<usize> {
        let at = self.top.checked_add(align - 1)? & !(align - 1);
        let top = at.checked_add(size)?;
        if top > self.end {
            return None;
        }
        self.last = at;
        self.top = top;
        Some(at)
    }

    /// Gives the bytes back when `address` is the most recent allocation;
    /// anything older stays until the instance goes.
    pub fn dealloc(&mut self, address: usize) {
        if address == self.last {
            self.top = address;
            self.last = usize::MAX;
        }
    }

    /// Resizes the most recent allocation where it is. False when
    /// `address` is not the most recent one or the region has no room.
    pub fn resize_in_place(&mut self, address: usize, new_size: usize) -> bool {
        if address != self.last {
            return false;
        }
        match address.checked_add(new_size) {
            Some(top) if top <= self.end => {
                self.top = top;
                true
            }
            _ => false,
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod global {
    use super::Bump;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::UnsafeCell;

    /// Enough for every read and small write the benchmarks make (a list of
    /// 20 rows uses well under a tenth of it). As zeroed static data it
    /// costs nothing until a page is touched.
    const ARENA_BYTES: usize = 1 << 20;

    #[repr(C, align(16))]
    struct Region([u8; ARENA_BYTES]);

    struct Arena {
        region: UnsafeCell<Region>,
        bump: UnsafeCell<Option<Bump>>,
    }

    // SAFETY: wasm32-wasip2 components run on one thread; nothing here is
    // ever touched from two at once.
    unsafe impl Sync for Arena {}

    #[global_allocator]
    static ARENA: Arena = Arena {
        region: UnsafeCell::new(Region([0; ARENA_BYTES])),
        bump: UnsafeCell::new(None),
    };

    impl Arena {
        /// SAFETY: single-threaded, and no caller keeps the reference
        /// across another allocator call.
        #[allow(clippy::mut_from_ref)]
        unsafe fn bump(&self) -> &mut Bump {
            let bump = unsafe { &mut *self.bump.get() };
            bump.get_or_insert_with(|| Bump::new(self.region.get() as usize, ARENA_BYTES))
        }
    }

    unsafe impl GlobalAlloc for Arena {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            match unsafe { self.bump() }.alloc(layout.size(), layout.align()) {
                Some(address) => address as *mut u8,
                None => unsafe { System.alloc(layout) },
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let bump = unsafe { self.bump() };
            if bump.owns(ptr as usize) {
                bump.dealloc(ptr as usize);
            } else {
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let (owned, resized) = {
                let bump = unsafe { self.bump() };
                let owned = bump.owns(ptr as usize);
                (owned, owned && bump.resize_in_place(ptr as usize, new_size))
            };
            if !owned {
                return unsafe { System.realloc(ptr, layout, new_size) };
            }
            if resized || new_size <= layout.size() {
                return ptr;
            }
            // SAFETY: `GlobalAlloc::realloc`'s contract makes this layout valid.
            let grown = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            let moved = unsafe { self.alloc(grown) };
            if !moved.is_null() {
                unsafe { std::ptr::copy_nonoverlapping(ptr, moved, layout.size()) };
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bump;

    #[test]
    fn allocations_are_aligned_and_do_not_overlap() {
        let mut bump = Bump::new(1000, 100);
        let a = bump.alloc(3, 1).unwrap();
        let b = bump.alloc(8, 8).unwrap();
        assert_eq!(a, 1000);
        assert_eq!(b, 1008, "rounded up past the first allocation");
        assert!(bump.owns(b) && !bump.owns(1100) && !bump.owns(999));
    }

    #[test]
    fn a_full_region_refuses_instead_of_overrunning() {
        let mut bump = Bump::new(0, 64);
        assert_eq!(bump.alloc(64, 1), Some(0));
        assert_eq!(bump.alloc(1, 1), None);
        assert_eq!(
            Bump::new(usize::MAX - 4, 4).alloc(2, 16),
            None,
            "no overflow"
        );
    }

    #[test]
    fn only_the_latest_allocation_is_freed_or_grown_in_place() {
        let mut bump = Bump::new(0, 64);
        let a = bump.alloc(8, 8).unwrap();
        let b = bump.alloc(8, 8).unwrap();
        assert!(!bump.resize_in_place(a, 16), "a is not the latest");
        bump.dealloc(a);
        assert_eq!(
            bump.alloc(1, 1),
            Some(16),
            "freeing an older block frees nothing"
        );

        let c = bump.alloc(8, 8).unwrap();
        assert!(bump.resize_in_place(c, 24));
        assert_eq!(bump.alloc(1, 1), Some(c + 24), "grown where it was");
        assert!(!bump.resize_in_place(b, 8));

        let d = bump.alloc(4, 4).unwrap();
        assert!(!bump.resize_in_place(d, 1000), "no room");
        bump.dealloc(d);
        assert_eq!(
            bump.alloc(4, 4),
            Some(d),
            "the latest block's bytes are reused"
        );
    }
}
