//! Unit tests of the connection state machine: each field behaviour on a fake clock through
//! a [`FakeNetwork`](super::fake_network::FakeNetwork), no sockets to a server and no waiting.
//! The same behaviours run end to end against the simulator in `tests/engine/`.

mod faults;
mod gateway;
mod harness;
