//! The command-line front ends of the engine.

pub mod control;
pub mod devices;
pub mod play;
pub mod sim;

/// Logs go to stderr; `RUST_LOG` picks the level (warnings by default, so `play`'s own
/// progress lines stay readable). Secrets never: see [`voxboard::logging`].
pub fn init_logging() {
    voxboard::logging::init_cli();
}
