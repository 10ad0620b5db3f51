//! The local control API: Stream Deck, Bitfocus Companion, Touch Portal and `voxboard trigger`
//! play sounds, stop them, hold push-to-talk and set the volume over HTTP on loopback
//! (`docs/control.md` is the reference).
//!
//! Who does what:
//!
//! - [`server`] binds `127.0.0.1` (port 7337 or the next free one), runs axum on a small tokio
//!   runtime of its own (thread `voxboard-api`) and writes the runtime file CLIs read;
//! - [`guard`] turns requests away before they cost anything: rate limit (429), body size (413),
//!   the bearer key (401);
//! - [`routes`] maps endpoints to [`bridge::Request`]s, parsing and checking their bodies;
//! - [`bridge`] carries each request to the UI thread and its answer back: the HTTP side never
//!   touches the board or the engine, and the UI thread never waits on the network;
//! - [`apply`] answers requests on the UI thread against the app's [`Core`](crate::ui::core::Core),
//!   through the same methods a click uses, so the API plays exactly what the button would;
//! - [`events`] turns the engine's status into `/events` messages on the UI thread, and
//!   [`ws`] streams them to each WebSocket client; [`overlay`] is the OBS page that shows them;
//! - [`runtime_file`] says where the running app is (`voxboard-api.json`, mode 0600).
//!
//! The key ([`ApiKey`]) is random per install and lives in the board's settings.

pub mod apply;
pub mod bridge;
pub mod error;
pub mod events;
pub mod guard;
pub mod overlay;
pub mod routes;
pub mod runtime_file;
pub mod server;
pub mod ws;

pub use apply::answer_calls;
pub use guard::RateLimit;
pub use server::{ApiOptions, ApiServer};
pub use voxboard_board::ApiKey;

/// The first port the API tries (the next few are tried when it is taken).
pub const DEFAULT_PORT: u16 = voxboard_board::DEFAULT_API_PORT;

/// How long push-to-talk held over the API stays down without a renewal (another
/// `down: true`): long enough for any press, short enough that a lost "up" does not leave the
/// microphone open all evening.
pub const PTT_HOLD: std::time::Duration = std::time::Duration::from_secs(30);

/// Bodies larger than this are refused with 413: every request body here is a few bytes.
pub const MAX_BODY: usize = 16 * 1024;
