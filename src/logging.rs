//! Where logs go, and what they may never contain.
//!
//! Whatever `RUST_LOG` asks for, crates that log wire frames or key material below `info` are
//! held at `info`: tungstenite prints every websocket frame at trace (the bot token in Identify,
//! the voice token, `secret_key` in Session Description), and davey/openmls print DAVE key
//! material. A global filter in front of every layer drops those events, so neither stderr nor
//! the app's log panel can show them, however specific the `RUST_LOG` directive.

use std::io::IsTerminal;

use tracing::Level;
use tracing::Metadata;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::prelude::*;

/// Crates (and their modules) whose debug/trace events can carry secrets.
const CAPPED_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "davey",
    "openmls",
    "openmls_rust_crypto",
    "rustls",
    "tokio_rustls",
];

/// Whether an event may be logged at all: capped crates only at `info` and above.
pub fn may_log(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    let capped = CAPPED_TARGETS.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    !capped || *meta.level() <= Level::INFO
}

/// The guard in front of every layer (see the module docs).
pub fn secret_guard<S>() -> FilterFn<impl Fn(&Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(may_log)
}

/// What stderr shows without `RUST_LOG`: warnings, but nothing from the decoders. symphonia
/// logs an ERROR ("probe reached EOF") for every file that is not audio, a failure we already
/// report in one clear line of our own; `RUST_LOG` brings it back for whoever asks.
const DEFAULT_FILTER: &str = "warn,symphonia=off";

/// Human-readable lines on stderr at `RUST_LOG`'s level ([`DEFAULT_FILTER`] without it);
/// colours only on a terminal, so a redirected log has no escape codes.
pub fn stderr_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter)
}

/// Logging for the command-line tools: stderr only.
pub fn init_cli() {
    let _ = tracing_subscriber::registry()
        .with(secret_guard::<tracing_subscriber::Registry>())
        .with(stderr_layer())
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records the target of every event that reaches it.
    struct Seen(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0
                .lock()
                .unwrap()
                .push(e.metadata().target().to_owned());
        }
    }

    #[test]
    fn frames_and_keys_stay_out_of_the_log_at_any_level() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(secret_guard::<tracing_subscriber::Registry>())
            .with(Seen(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "tungstenite::protocol", "frame with the token");
            tracing::debug!(target: "tokio_tungstenite", "frame");
            tracing::debug!(target: "davey", "key material");
            tracing::warn!(target: "tungstenite::protocol", "a warning is fine");
            tracing::trace!(target: "voxboard_voice::engine", "our own trace is fine");
            tracing::trace!(target: "daveyish", "a crate that only starts alike");
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "tungstenite::protocol",
                "voxboard_voice::engine",
                "daveyish"
            ]
        );
    }
}
