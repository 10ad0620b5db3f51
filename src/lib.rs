//! Voxboard: a Discord voice engine, a strict Discord simulator, and a soundboard.
//!
//! The architecture is "I/O at the edges, state in the ECS, one clock":
//! - [`discord`] holds every byte of the Discord protocols (gateways, RTP, transport crypto);
//! - [`engine`] owns the `bevy_ecs` world and the 20 ms clock; tokio tasks only pump I/O;
//! - [`audio`] holds every sample: decoding, resampling, Opus;
//! - [`sim`] is Discord on loopback, strict enough to prove the engine right;
//! - [`board`] is what the streamer arranged (sounds, tabs, settings, hotkeys) and its storage;
//! - [`ui`] is the desktop app.

pub mod audio;
pub mod board;
pub mod discord;
pub mod engine;
pub mod sim;
pub mod ui;
