//! Giving the memory of evicted clips back to the system.
//!
//! glibc's malloc serves large blocks with `mmap` (returned to the system on free) only above
//! a threshold, and raises that threshold to the size of each large block freed, up to 32 MiB.
//! After the first evicted clip, clip buffers therefore come from the heap arenas (one per
//! decode thread), and what eviction frees stays in the process, fragmented. Measured with the
//! `board_rss` example (500 sounds, 256 MB cache): 612 MB peak RSS with the default, 326 MB
//! with a fixed threshold.

use std::sync::Once;

/// Fixes glibc's mmap threshold (once per process; nothing elsewhere).
pub fn return_freed_clips_to_the_system() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            const M_MMAP_THRESHOLD: i32 = -3;
            // Blocks this large and up are mapped on their own and unmapped when freed: every
            // clip longer than about 0.7 s, and each stream's ring.
            const MMAP_THRESHOLD: i32 = 256 * 1024;
            unsafe extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            // SAFETY: mallopt only sets a parameter of glibc's allocator, under its own lock;
            // it touches no memory of ours.
            let set = unsafe { mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
            if set != 1 {
                tracing::debug!("malloc kept its own mmap threshold");
            }
        }
    });
}
