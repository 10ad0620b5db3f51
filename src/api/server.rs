//! The API's lifecycle: bind loopback, serve on a thread of its own, write the runtime file;
//! on stop, remove the file and let in-flight requests end with 503 rather than hang.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::oneshot;

use super::ApiKey;
use super::bridge::{self, Call, Inbox};
use super::events::EventHub;
use super::guard::{Guard, RateLimit};
use super::routes;
use super::runtime_file::{self, RuntimeInfo};
use crate::board::ApiSettings;

/// How many ports from the configured one are tried when it is taken (another app, or a
/// second Voxboard such as the demo).
const PORT_TRIES: u16 = 10;

/// How the app runs its API (the board's settings say whether, where, and the key).
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Overrides the settings' port; `Some(0)` takes any free port (tests).
    pub port: Option<u16>,
    /// Where to write `voxboard-api.json`; `None` writes none.
    pub runtime_dir: Option<PathBuf>,
    /// The demo writes `voxboard-api-demo.json` instead.
    pub instance: runtime_file::Instance,
    pub rate: RateLimit,
    /// How long an API push-to-talk hold lasts without renewal ([`super::PTT_HOLD`]).
    pub ptt_hold: Duration,
}

impl ApiOptions {
    /// The desktop app's: the settings' port and the usual runtime dir.
    pub fn from_env() -> Self {
        Self {
            port: None,
            runtime_dir: runtime_file::dir(),
            instance: runtime_file::Instance::App,
            rate: RateLimit::default(),
            ptt_hold: super::PTT_HOLD,
        }
    }
}

pub struct ApiServer {
    url: String,
    /// Dropped on stop, which answers every waiting request 503 at once.
    inbox: Option<Inbox>,
    events: EventHub,
    guard: Arc<Guard>,
    instance: runtime_file::Instance,
    pub(crate) ptt_hold: Duration,
    runtime_file: Option<PathBuf>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds and starts serving. `wake` asks the UI thread for a frame.
    pub fn start(
        options: &ApiOptions,
        settings: &ApiSettings,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> anyhow::Result<Self> {
        let first = options.port.unwrap_or(settings.port);
        let listener = bind(first)?;
        let addr = listener.local_addr().context("reading the API's address")?;
        let url = format!("http://{addr}");
        listener
            .set_nonblocking(true)
            .context("making the API's socket non-blocking")?;
        let (link, inbox) = bridge::link(wake);
        let events = EventHub::default();
        let guard = Arc::new(Guard::new(settings.key.clone(), options.rate));
        let app = routes::router(link, guard.clone(), events.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        // One thread is plenty for a handful of requests a second from one machine.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the API's runtime")?;
        let thread = std::thread::Builder::new()
            .name("voxboard-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(target: "voxboard::api", "the control API cannot listen: {e}");
                            return;
                        }
                    };
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                    if let Err(e) = serve.await {
                        tracing::error!(target: "voxboard::api", "the control API stopped: {e}");
                    }
                });
            })
            .context("starting the API's thread")?;
        let runtime_file = options.runtime_dir.as_ref().and_then(|dir| {
            let info = RuntimeInfo {
                url: url.clone(),
                key: settings.key.expose().to_owned(),
                pid: std::process::id(),
            };
            // Without the file the API still works for tools given the URL and key by hand.
            runtime_file::write(dir, options.instance, &info)
                .inspect_err(|e| {
                    tracing::warn!(target: "voxboard::api", "no runtime file for the CLI: {e:#}")
                })
                .ok()
        });
        tracing::info!(target: "voxboard::api", "control API listening on {url}");
        Ok(Self {
            url,
            inbox: Some(inbox),
            events,
            guard,
            ptt_hold: options.ptt_hold,
            instance: options.instance,
            runtime_file,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn runtime_file(&self) -> Option<&std::path::Path> {
        self.runtime_file.as_deref()
    }

    /// Up to `max` requests waiting for the UI thread.
    pub fn take_calls(&self, max: usize) -> Vec<Call> {
        self.inbox.as_ref().map(|i| i.take(max)).unwrap_or_default()
    }

    /// Publishes what changed in the app's status to `/events` clients (UI thread, every
    /// frame; never waits).
    pub fn publish_events(&self, core: &crate::ui::core::Core) {
        self.events.publish_changes(core);
    }

    /// Lets only `key` in from now on, and rewrites the runtime file with it (on a thread of
    /// its own: this is called from the UI thread, which does not wait on disks).
    pub fn renew_key(&self, key: &ApiKey) {
        self.guard.set_key(key.clone());
        let Some(dir) = self.runtime_file.as_ref().and_then(|p| p.parent()) else {
            return;
        };
        let (dir, instance, info) = (
            dir.to_owned(),
            self.instance,
            RuntimeInfo {
                url: self.url.clone(),
                key: key.expose().to_owned(),
                pid: std::process::id(),
            },
        );
        let _ = std::thread::Builder::new()
            .name("voxboard-api-file".into())
            .spawn(move || {
                if let Err(e) = runtime_file::write(&dir, instance, &info) {
                    tracing::warn!(target: "voxboard::api", "the runtime file keeps the old key: {e:#}");
                }
            });
    }

    /// Stops serving: removes the runtime file, answers waiting requests 503, and waits up to
    /// a second for the thread (open keep-alive connections are closed by the shutdown).
    /// Idempotent.
    pub fn stop(&mut self) {
        if let Some(path) = self.runtime_file.take() {
            runtime_file::remove_if_ours(&path, &self.url);
        }
        self.inbox = None;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(1);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds 127.0.0.1 (never another interface: the API is for this machine only) on `first`, or
/// the next free port of the few after it; port 0 takes any free port.
fn bind(first: u16) -> anyhow::Result<TcpListener> {
    if first == 0 {
        return TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1");
    }
    let mut last = None;
    for port in (0..PORT_TRIES).map_while(|i| first.checked_add(i)) {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("binding 127.0.0.1:{port}")),
        }
    }
    let e = last.map_or_else(|| "no port to try".to_owned(), |e| e.to_string());
    Err(anyhow::anyhow!(
        "ports {first} to {} are all taken ({e}); choose another port in the board's settings",
        first.saturating_add(PORT_TRIES - 1)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_moves_to_the_next() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        match bind(port) {
            Ok(l) => {
                let got = l.local_addr().unwrap();
                assert!(got.ip().is_loopback());
                assert!(got.port() > port && got.port() < port.saturating_add(PORT_TRIES));
            }
            // The few ports after an ephemeral one can all be in use on a busy machine.
            Err(e) => assert!(e.to_string().contains("all taken"), "{e:#}"),
        }
    }
}
