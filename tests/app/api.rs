//! The control API over real HTTP against the real app core (kittest harness, real engine, the
//! in-process simulator), and the `trigger`/`stop-all`/`ptt` subcommands of the real binary
//! against it. The API's answers come from the UI thread, which is the test's own: every call
//! is made on another thread while the test steps the app (`support::ApiApp::stepping`).

mod cli;
mod events;
mod fuzz;
mod http;
mod overlay;
pub mod support;
