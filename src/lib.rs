//! Voxboard, the app: what the streamer arranged and the desktop UI around the engine.
//!
//! - [`board`] is what the streamer arranged (sounds, tabs, settings, hotkeys) and its storage;
//! - [`ui`] is the desktop app (eframe/egui);
//! - [`api`] is its local control API (HTTP on loopback, for Stream Deck and `voxboard trigger`);
//! - [`logging`] keeps secrets out of every log;
//! - [`paths`] says where its files live on each platform.
//!
//! The engine is `voxboard-voice`, every sample is `voxboard-audio`, and Discord on loopback
//! (for `--demo` and the tests) is `voxboard-sim`.

pub mod api;
pub mod board;
pub mod logging;
pub mod paths;
pub mod ui;
