//! Components of a guild voice connection and of a playing sound.

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use crate::discord::crypto::TransportCipher;
use crate::discord::gateway::payloads::VoiceServer;
use crate::discord::rtp::RtpStream;
use crate::discord::voice_gateway::VoiceCommand;
use crate::discord::voice_gateway::payloads::Ready as VoiceReady;
use crate::engine::VoiceError;

/// What the user asked for in one guild.
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct VoiceConn {
    pub guild_id: u64,
    pub channel_id: u64,
    pub self_mute: bool,
    pub self_deaf: bool,
}

/// The connection's state machine (see `connection.rs` for the transitions).
#[derive(Component, Debug, Clone, PartialEq)]
pub enum ConnPhase {
    /// op 4 sent; waiting for VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE.
    AwaitingServer {
        since: Instant,
    },
    /// Voice websocket opening; Identify sent.
    Connecting,
    /// Ready received; IP discovery running.
    Discovering,
    /// Select Protocol sent; waiting for Session Description.
    Selecting,
    /// Audio can flow.
    Ready,
    /// The voice socket dropped; resuming on the same server while UDP keeps flowing.
    Resuming {
        attempt: u32,
        at: Instant,
    },
    /// The session is gone; a full rejoin through op 4 is scheduled.
    Reconnecting {
        attempt: u32,
        at: Instant,
    },
    /// Closed with 4014/4022: kicked or moved; the main gateway will say which.
    AwaitingMainGateway {
        since: Instant,
    },
    /// We asked to leave (op 4 with `channel_id: null`).
    Leaving {
        since: Instant,
    },
    /// Over, for good.
    Disconnected {
        reason: String,
    },
    Failed {
        error: VoiceError,
    },
}

impl ConnPhase {
    /// The phase without its timers and payloads, as the status shows it.
    pub fn kind(&self) -> Phase {
        match self {
            ConnPhase::AwaitingServer { .. } => Phase::AwaitingServer,
            ConnPhase::Connecting => Phase::Connecting,
            ConnPhase::Discovering => Phase::Discovering,
            ConnPhase::Selecting => Phase::Selecting,
            ConnPhase::Ready => Phase::Ready,
            ConnPhase::Resuming { .. } => Phase::Resuming,
            ConnPhase::Reconnecting { .. } => Phase::Reconnecting,
            ConnPhase::AwaitingMainGateway { .. } => Phase::AwaitingMainGateway,
            ConnPhase::Leaving { .. } => Phase::Leaving,
            ConnPhase::Disconnected { .. } => Phase::Disconnected,
            ConnPhase::Failed { .. } => Phase::Failed,
        }
    }

    /// Short name for status lines and logs.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    pub fn is_over(&self) -> bool {
        self.kind().is_over()
    }
}

/// A connection's phase in the status snapshot: what panels colour and what callers wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    AwaitingServer,
    Connecting,
    Discovering,
    Selecting,
    Ready,
    Resuming,
    Reconnecting,
    AwaitingMainGateway,
    Leaving,
    Disconnected,
    Failed,
}

impl Phase {
    /// Words for cards, `play`'s output and the control API's JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::AwaitingServer => "awaiting voice server",
            Phase::Connecting => "connecting",
            Phase::Discovering => "discovering",
            Phase::Selecting => "selecting protocol",
            Phase::Ready => "ready",
            Phase::Resuming => "resuming",
            Phase::Reconnecting => "reconnecting",
            Phase::AwaitingMainGateway => "disconnected, waiting for the gateway",
            Phase::Leaving => "leaving",
            Phase::Disconnected => "disconnected",
            Phase::Failed => "failed",
        }
    }

    /// Over for good: nothing more happens without a new join.
    pub fn is_over(self) -> bool {
        matches!(self, Phase::Disconnected | Phase::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the main gateway told us about this guild's voice session.
#[derive(Component, Debug, Default)]
pub struct VoiceSessionInfo {
    pub session_id: Option<String>,
    pub server: Option<VoiceServer>,
    /// Discord announced `endpoint: null` (it is moving the call) and has not named the new
    /// server yet.
    pub reallocating: bool,
}

/// The link to this connection's voice gateway task.
#[derive(Component, Debug, Default)]
pub struct VoiceLink {
    /// Bumped for every new socket, so late events from an old one are ignored.
    pub generation: u32,
    pub tx: Option<UnboundedSender<VoiceCommand>>,
    pub url: Option<String>,
    /// Last server seq seen (for `seq_ack` on resume); -1 before any.
    pub last_seq: i64,
    pub ready: Option<VoiceReady>,
    /// The socket from IP discovery, waiting for Session Description.
    pub pending_socket: Option<UdpSocket>,
    /// Failed attempts in a row; reset once audio can flow (bounds the attempts).
    pub rejoin_attempts: u32,
    /// Recent rejoins, decaying by one per healthy minute: a server that accepts and then fails
    /// over and over keeps a long backoff instead of starting from the shortest each time.
    pub flaps: u32,
    pub flap_decay_at: Option<Instant>,
    /// When the current socket was opened: its handshake (Hello → Ready → discovery → Session
    /// Description, or Resumed) must finish by [`HANDSHAKE_TIMEOUT`] after it.
    pub opened_at: Option<Instant>,
}

/// How long a voice server may take to bring a new socket to audio. A server that accepts the
/// websocket and then says nothing is abandoned after this and the next attempt made; on
/// loopback the whole handshake takes a few milliseconds, on Discord well under a second.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl VoiceLink {
    pub fn send(&self, command: VoiceCommand) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(command);
        }
    }

    /// Closes the current socket (if any) and forgets it; its late events are ignored.
    pub fn close(&mut self, code: u16) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(VoiceCommand::Close(code));
            self.generation += 1;
        }
    }

    /// A rejoin is being scheduled (after `rejoin_attempts` was counted): the backoff step,
    /// which counts recent rejoins as well as this run of failures.
    pub fn backoff_step(&mut self) -> u32 {
        let step = self.rejoin_attempts.saturating_sub(1).max(self.flaps);
        self.flaps = self.flaps.saturating_add(1);
        self.flap_decay_at = None;
        step
    }

    /// While audio flows: one healthy minute forgives one recent rejoin.
    pub fn decay_flaps(&mut self, now: Instant) {
        match self.flap_decay_at {
            _ if self.flaps == 0 => {}
            None => self.flap_decay_at = Some(now + FLAP_DECAY),
            Some(at) if now >= at => {
                self.flaps -= 1;
                self.flap_decay_at = (self.flaps > 0).then_some(now + FLAP_DECAY);
            }
            Some(_) => {}
        }
    }
}

const FLAP_DECAY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_server_keeps_a_growing_backoff_that_decays_with_healthy_minutes() {
        let mut link = VoiceLink::default();
        let t0 = Instant::now();
        // Each rejoin succeeds (the attempt counter resets), then the server fails again.
        let mut steps = Vec::new();
        for _ in 0..4 {
            link.rejoin_attempts = 1;
            steps.push(link.backoff_step());
            link.rejoin_attempts = 0;
            link.decay_flaps(t0);
        }
        assert_eq!(steps, [0, 1, 2, 3], "before: always step 0");
        // Ready for two healthy minutes: two rejoins forgiven.
        link.decay_flaps(t0 + FLAP_DECAY);
        link.decay_flaps(t0 + FLAP_DECAY * 2);
        assert_eq!(link.flaps, 2);
        link.rejoin_attempts = 1;
        assert_eq!(link.backoff_step(), 2);
    }

    #[test]
    fn a_run_of_failures_counts_even_without_recent_rejoins() {
        let mut link = VoiceLink {
            rejoin_attempts: 3,
            ..Default::default()
        };
        assert_eq!(link.backoff_step(), 2);
    }
}

/// The encrypted RTP stream of an established voice session.
pub struct UdpTransport {
    pub socket: UdpSocket,
    pub rtp: RtpStream,
    pub cipher: TransportCipher,
    /// Reused for every packet: steady-state sending does not allocate.
    pub packet: Vec<u8>,
    pub last_sent: Instant,
    /// Set while packets of this talk spurt wait in the voice task behind its op 5 (see
    /// `transmit::send_after_speaking`): how many are still unsent.
    pub in_flight: Option<std::sync::Arc<std::sync::atomic::AtomicU32>>,
}

#[derive(Component, Default)]
pub struct Transport(pub Option<UdpTransport>);

/// Speaking state: op 5 before the first packet, five silence frames when audio stops.
#[derive(Component, Debug)]
pub struct Speaking {
    pub flags: u32,
    /// Whether this session's SSRC was announced with op 5 (required before any packet).
    pub registered: bool,
    pub asserted: bool,
    /// The voice socket was resumed: the next audio packet is preceded by op 5 again, so the
    /// new socket learns our speaking state (as after a fresh Identify).
    pub reassert: bool,
    pub silence_left: u8,
}

impl Default for Speaking {
    fn default() -> Self {
        Self {
            flags: crate::discord::voice_gateway::payloads::speaking::MICROPHONE,
            registered: false,
            asserted: false,
            reassert: false,
            silence_left: 0,
        }
    }
}

/// Opus frames written directly by the library user, sent before any mix.
#[derive(Component, Debug, Default)]
pub struct OpusQueue(pub VecDeque<Vec<u8>>);

impl OpusQueue {
    /// 5 s of frames. `Session::write` paces a writer to real time, but while the connection
    /// is down nothing drains the queue: past this the oldest (stalest) frames go.
    pub const LIMIT: usize = 250;

    /// Queues a frame; returns whether an old one was dropped to make room.
    pub fn push(&mut self, frame: Vec<u8>) -> bool {
        let full = self.0.len() >= Self::LIMIT;
        if full {
            self.0.pop_front();
        }
        self.0.push_back(frame);
        full
    }
}

/// Counters and recent history for the status panel.
#[derive(Component, Debug, Clone, Default)]
pub struct ConnStats {
    pub packets: u64,
    pub bytes: u64,
    pub send_errors: u64,
    pub heartbeat_rtt: Option<Duration>,
    pub last_close: Option<u16>,
    /// Why a voice connection attempt last failed (kept, like `last_close`).
    pub last_error: Option<String>,
    pub resumes: u32,
    pub rejoins: u32,
    pub moves: u32,
    pub mode: Option<&'static str>,
    pub endpoint: Option<String>,
    /// From a play command to the first packet that carried it, for the last sound.
    pub last_play_latency: Option<Duration>,
}

/// Callers of `join_channel` waiting for this connection to be ready.
#[derive(Component, Default)]
pub struct JoinWaiters(pub Vec<Sender<Result<(), VoiceError>>>);

impl JoinWaiters {
    pub fn resolve(&mut self, result: Result<(), VoiceError>) {
        for w in self.0.drain(..) {
            let _ = w.send(result.clone());
        }
    }
}

/// Which connections a sound plays into.
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Guilds(Vec<u64>),
    /// The local monitor only, no guild (the edit dialog's preview). It plays while a monitor
    /// output is attached and ends at once without one.
    Monitor,
}

impl Target {
    pub fn includes(&self, guild_id: u64) -> bool {
        match self {
            Target::All => true,
            Target::Guilds(g) => g.contains(&guild_id),
            Target::Monitor => false,
        }
    }
}

/// A sound that is playing.
#[derive(Component)]
pub struct Playback {
    pub id: u64,
    /// The board sound it plays, for retrigger policies and progress bars.
    pub sound: Option<u64>,
    pub cursor: voxboard_audio::mixer::Cursor,
    /// Its choke group, if any (see `PlayRequest::choke`).
    pub choke: Option<u32>,
    pub done: Option<Sender<()>>,
    /// When the play command was issued, for the click-to-first-packet latency.
    pub issued_at: Instant,
    pub first_sent: bool,
}

/// A per-guild volume, applied to that guild's mix.
#[derive(Component, Debug, Clone, Copy)]
pub struct GuildGain(pub f32);

impl Default for GuildGain {
    fn default() -> Self {
        GuildGain(1.0)
    }
}
