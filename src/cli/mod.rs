//! The command-line front ends of the engine.

pub mod devices;
pub mod play;
pub mod sim;

/// Logs go to stderr; `RUST_LOG` picks the level (warnings by default, so `play`'s own
/// progress lines stay readable).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
