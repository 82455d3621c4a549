//! Giving the memory of a large write transaction back to the operating system.
//!
//! A write transaction keeps every page it changes as a node in memory: a bulk load of a
//! million entries holds tens of thousands of leaves, hundreds of MiB in small allocations. When the
//! transaction ends they are all freed, but glibc's malloc returns memory to the system only
//! from the top of its heap, and a few allocations made during the transaction outlive it (the
//! new snapshot, the free-page lists), which pins the top. The process then keeps its peak for
//! good, and the file pages that later reads map come on top of it: the 1,000,000-entry
//! benchmark's process peaked at 918 MiB, and at 777 MiB once this gave the arena back.
//! `malloc_trim(0)` also releases the free pages inside the heap; it took 12.7 ms for a heap
//! of 110 MiB, after the 640 ms of the 300,000-entry load that filled it, so it runs only
//! after transactions of at least [`RELEASE_AFTER_NODES`] nodes.
//!
//! This is not I/O (nothing here touches a file), but like the storage it is the engine
//! talking to the operating system, so it lives beside it.

/// A write transaction whose arena held at least this many nodes (16 MiB of 4 KiB pages) gives
/// the freed memory back when it ends. The small commits of a daemon never reach it.
pub(crate) const RELEASE_AFTER_NODES: usize = 4_096;

/// Ask the allocator to return freed memory to the system (glibc; elsewhere nothing to do, as
/// other allocators return memory on their own schedule).
pub(crate) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes no pointers and touches only glibc's own free lists,
        // under its arena locks: it is sound from any thread at any time. A global allocator
        // other than glibc's leaves glibc's heap nearly empty, and the call then does nothing.
        #[allow(unsafe_code)] // One of the three `unsafe`s of the engine (lib.rs denies the rest).
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
