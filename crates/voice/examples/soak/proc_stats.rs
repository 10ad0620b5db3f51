//! RSS and thread count of this process, from /proc/self/status (Linux), and its live heap.

#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
    pub threads: u64,
    /// Live heap (`heap.rs`), which allocator caching does not blur.
    pub heap_kb: u64,
}

pub fn read() -> Stats {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Stats {
        rss_kb: field("VmRSS:"),
        peak_rss_kb: field("VmHWM:"),
        threads: field("Threads:"),
        heap_kb: crate::heap::live_kb(),
    }
}
