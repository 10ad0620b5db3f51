//! The engine against the simulator over real sockets: playing, mixing, recovery, DAVE.

mod api;
mod common;
mod dave;
mod lifecycle;
mod mixer;
mod recovery;
mod sessions;
mod stage;
mod voice_engine;
