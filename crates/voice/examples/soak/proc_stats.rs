//! RSS and thread count of this process, from /proc/self/status (Linux), and its live heap.

#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub rss_kb: u64,
    /// Anonymous memory (heap, stacks): what a leak grows. The rest of the RSS is mostly the
    /// binary's code paged in as new paths run (a fault's recovery code, the first time).
    pub anon_kb: u64,
    pub file_kb: u64,
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
        anon_kb: field("RssAnon:"),
        file_kb: field("RssFile:"),
        peak_rss_kb: field("VmHWM:"),
        threads: field("Threads:"),
        heap_kb: crate::heap::live_kb(),
    }
}
