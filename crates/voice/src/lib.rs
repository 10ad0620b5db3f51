//! The Discord voice engine behind Voxboard, usable without any GUI.
//!
//! The architecture is "I/O at the edges, state in the ECS, one clock":
//! - [`discord`] holds every byte of the Discord protocols (gateways, RTP, transport crypto);
//! - [`engine`] owns the `bevy_ecs` world and the 20 ms clock; tokio tasks only pump I/O.
//!
//! Audio (decoding, mixing DSP, Opus) comes from `voxboard-audio`.

pub mod discord;
pub mod engine;
