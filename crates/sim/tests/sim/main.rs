//! The simulator's own tests, with a raw client written from the protocol (never the engine).

mod dave;
mod faults;
mod resumes;
mod sim_client;
mod sim_dave;
mod strictness;
