//! Giving freed memory back to the OS. The binary's allocator is mimalloc, which purges
//! freed pages lazily, from a thread's allocation slow path: a thread that turned quiet
//! after a burst (a worker after a storm of handshakes, the cluster thread after a storm of
//! subscriptions) would keep that garbage resident for ever. Each such thread calls
//! [`collect_freed_memory`] once a second.

/// Return this thread's freed allocator pages to the OS (a no-op for memory mimalloc does
/// not manage).
pub fn collect_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; it only touches the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(false) };
}
