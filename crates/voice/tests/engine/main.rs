//! The engine against the simulator over real sockets: playing, mixing, recovery, DAVE.

mod api;
mod common;
mod dave;
mod dave_calls;
mod lifecycle;
mod mixer;
mod recovery;
mod sessions;
mod stage;
mod streaming;
mod voice_engine;
