//! What `/events` streams: the UI thread compares each engine status with the last one it saw
//! and publishes the differences (sound started, progress, stopped; connection phase;
//! push-to-talk) as numbered JSON messages.
//!
//! Publishing never waits: a tokio broadcast ring of [`QUEUE`] messages is every client's
//! bounded queue, and a client that falls that far behind is dropped by its own task
//! ([`super::ws`]), never slowing the UI thread or the engine's tick. Events come from the
//! status the engine publishes every 100 ms, so progress moves in 100 ms steps and a sound
//! shorter than that may show neither start nor stop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use voxboard_voice::engine::Phase;

use crate::ui::core::Core;

/// Messages a client may fall behind by before it is dropped. A few seconds of a busy board
/// (progress for several sounds every 100 ms), far more than any live client lags.
pub const QUEUE: usize = 256;

/// Progress with three decimals (an f32 printed as f64 shows noise like 0.41999998).
fn rounded(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

/// A playback as the feed last saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    sound: Option<u64>,
    name: Option<String>,
    progress: f64,
}

/// The state a new client starts from, and the stream after it.
struct Shared {
    tx: broadcast::Sender<Utf8Bytes>,
    /// The number of the last message published.
    seq: u64,
    playing: BTreeMap<u64, Seen>,
    /// guild id → (channel id, phase, reason)
    connections: BTreeMap<u64, (u64, Phase, Option<String>)>,
    push_to_talk: bool,
}

/// The one feed, shared by the UI thread (which publishes) and the API's handlers (which
/// subscribe). Both hold its lock only to copy or compare a few values.
#[derive(Clone)]
pub struct EventHub {
    shared: Arc<Mutex<Shared>>,
    /// Clients connected now (each costs a task and a socket; see [`MAX_CLIENTS`]).
    pub clients: Arc<AtomicUsize>,
}

/// Event clients at once at most: an overlay or two and a few controllers are normal.
pub const MAX_CLIENTS: usize = 32;

/// What a new client gets: the state now (to send first) and every message after it.
pub struct Subscription {
    pub snapshot: String,
    pub rx: broadcast::Receiver<Utf8Bytes>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                tx: broadcast::channel(QUEUE).0,
                seq: 0,
                playing: BTreeMap::new(),
                connections: BTreeMap::new(),
                push_to_talk: false,
            })),
            clients: Arc::default(),
        }
    }
}

impl EventHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes and takes the snapshot under one lock, so that no message falls between
    /// them: the first message received is the one numbered `snapshot.seq + 1`.
    pub fn subscribe(&self) -> Subscription {
        let s = self.lock();
        let playing: Vec<Value> = s
            .playing
            .iter()
            .map(|(id, p)| playing_json(*id, p))
            .collect();
        let connections: Vec<Value> = s
            .connections
            .iter()
            .map(|(g, (c, phase, reason))| connection_json(*g, *c, phase.name(), reason.as_deref()))
            .collect();
        let snapshot = json!({
            "seq": s.seq,
            "event": "snapshot",
            "playing": playing,
            "connections": connections,
            "push_to_talk": s.push_to_talk,
        });
        Subscription {
            snapshot: snapshot.to_string(),
            rx: s.tx.subscribe(),
        }
    }

    /// Counts a client in, unless [`MAX_CLIENTS`] are connected; the count goes down when the
    /// returned guard drops.
    pub fn admit(&self) -> Option<ClientSlot> {
        let n = self.clients.fetch_add(1, Ordering::AcqRel);
        let slot = ClientSlot(self.clients.clone());
        (n < MAX_CLIENTS).then_some(slot)
    }

    /// Compares the app's newest status with the last one seen and publishes what changed.
    /// Called by the UI thread every frame; costs a few comparisons when nothing did.
    pub fn publish_changes(&self, core: &Core) {
        let status = &core.status;
        let mut s = self.lock();
        let mut out: Vec<Value> = Vec::new();

        let now: BTreeMap<u64, Seen> = status
            .playing
            .iter()
            .map(|p| {
                let seen = s.playing.get(&p.id);
                // The name is looked up once, at the start: a renamed sound keeps its name.
                let name = seen.map(|x| x.name.clone()).unwrap_or_else(|| {
                    p.sound
                        .and_then(|id| core.board.sound(id))
                        .map(|x| x.name.clone())
                });
                let seen = Seen {
                    sound: p.sound,
                    name,
                    progress: rounded(p.progress),
                };
                (p.id, seen)
            })
            .collect();
        for (id, old) in &s.playing {
            if !now.contains_key(id) {
                let mut e = playing_json(*id, old);
                e["event"] = json!("sound_stopped");
                out.push(e);
            }
        }
        for (id, p) in &now {
            let event = match s.playing.get(id) {
                None => "sound_started",
                Some(old) if old.progress != p.progress => "sound_progress",
                Some(_) => continue,
            };
            let mut e = playing_json(*id, p);
            e["event"] = json!(event);
            out.push(e);
        }
        s.playing = now;

        let mut gone: Vec<u64> = s.connections.keys().copied().collect();
        for c in &status.connections {
            gone.retain(|g| *g != c.guild_id);
            let entry = (c.channel_id, c.phase, c.reason.clone());
            if s.connections.get(&c.guild_id) != Some(&entry) {
                let mut e = connection_json(
                    c.guild_id,
                    c.channel_id,
                    c.phase.name(),
                    c.reason.as_deref(),
                );
                e["event"] = json!("connection");
                out.push(e);
                s.connections.insert(c.guild_id, entry);
            }
        }
        for g in gone {
            if let Some((channel, ..)) = s.connections.remove(&g) {
                let mut e = connection_json(g, channel, "left", None);
                e["event"] = json!("connection");
                out.push(e);
            }
        }

        if s.push_to_talk != status.push_to_talk {
            s.push_to_talk = status.push_to_talk;
            out.push(json!({"event": "push_to_talk", "down": status.push_to_talk}));
        }

        publish(&mut s, out);
    }

    /// Publishes events as they are (tests of the stream itself, without an app).
    #[cfg(test)]
    pub fn publish_raw(&self, events: Vec<Value>) {
        publish(&mut self.lock(), events);
    }
}

/// Numbers the events and sends them to every client's queue.
fn publish(s: &mut Shared, events: Vec<Value>) {
    for mut e in events {
        s.seq += 1;
        e["seq"] = json!(s.seq);
        // No receivers is not an error: nobody is listening yet.
        let _ = s.tx.send(Utf8Bytes::from(e.to_string()));
    }
}

/// One connected client, counted until dropped.
pub struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn playing_json(playback: u64, p: &Seen) -> Value {
    json!({
        "playback": playback,
        "sound_id": p.sound,
        "name": p.name,
        "progress": p.progress,
    })
}

/// Discord ids go as strings, as in `/v1/status` (they pass what JavaScript numbers hold).
fn connection_json(guild: u64, channel: u64, phase: &str, reason: Option<&str>) -> Value {
    json!({
        "guild_id": guild.to_string(),
        "channel_id": channel.to_string(),
        "phase": phase,
        "reason": reason,
    })
}
