//! A non-blocking handle to a running engine, for the desktop app: start it, send commands,
//! read the status snapshot. Nothing here waits on the network.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::clock::{EngineThread, spawn_engine};
use super::status::Status;
use super::voice::{ConnectError, VoiceConfig};
use super::{Command, EngineMsg};
use crate::discord::ws;

pub struct EngineHandle {
    tx: Sender<EngineMsg>,
    status: watch::Receiver<Status>,
    engine: EngineThread,
    next_id: Arc<AtomicU64>,
}

impl EngineHandle {
    /// Starts the engine and its gateway connection; returns at once. Progress and errors
    /// (authentication failed, ...) show up in [`status`](Self::status).
    pub fn start(config: VoiceConfig) -> Result<EngineHandle, ConnectError> {
        let url = ws::check_gateway_url(&config.gateway_url)?;
        let rest_url = crate::discord::rest::check_rest_url(&config.rest_url)?;
        let engine = spawn_engine(config.settings, url, rest_url, config.token, config.tls)?;
        Ok(EngineHandle {
            tx: engine.tx.clone(),
            status: engine.status.clone(),
            engine,
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// Sends a command; never blocks.
    pub fn send(&self, command: Command) {
        let _ = self.tx.send(EngineMsg::Command(command));
    }

    pub fn sender(&self) -> Sender<EngineMsg> {
        self.tx.clone()
    }

    /// The newest status; `has_changed()` says whether to repaint.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// A fresh id for a playback.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn id_counter(&self) -> Arc<AtomicU64> {
        self.next_id.clone()
    }

    /// Leaves every channel (waiting up to `grace` for the leaves to go out), then stops.
    pub fn shutdown(mut self, grace: Duration) {
        let live: Vec<u64> = self
            .status
            .borrow()
            .connections
            .iter()
            .filter(|c| !c.phase.is_over())
            .map(|c| c.guild_id)
            .collect();
        let waits: Vec<_> = live
            .into_iter()
            .map(|guild_id| {
                let (reply, answer) = std::sync::mpsc::channel();
                self.send(Command::Leave {
                    guild_id,
                    reply: Some(reply),
                });
                answer
            })
            .collect();
        let deadline = Instant::now() + grace;
        for w in waits {
            let _ = w.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(thread) = self.engine.thread.take() {
            self.send(Command::Shutdown);
            let _ = thread.join();
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
