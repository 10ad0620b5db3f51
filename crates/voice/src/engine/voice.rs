//! The library API: a `Voice` manager and per-guild `Session` handles (after arikawa's voice
//! package). Every call sends a [`Command`] to the engine thread; the blocking calls wait on a
//! reply with a timeout, so a caller never hangs on a dead engine.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::handle::EngineHandle;
use super::status::Status;
use super::{Command, EngineMsg, PlayRequest, Settings, Target, VoiceError};
use crate::discord::ws::{self, DISCORD_GATEWAY, Token};

pub struct VoiceConfig {
    /// Discord's production gateway by default; `ws://127.0.0.1:…` for the simulator.
    pub gateway_url: String,
    /// Discord's REST API (`https://discord.com/api/v10`); the simulator's `http://127.0.0.1:…`.
    pub rest_url: String,
    pub token: Token,
    pub settings: Settings,
    /// How long `connect` waits for READY and the guilds.
    pub connect_timeout: Duration,
    /// The certificate authorities `wss://` trusts (webpki's roots by default).
    pub tls: ws::TlsTrust,
}

impl VoiceConfig {
    pub fn new(token: Token) -> Self {
        Self {
            gateway_url: DISCORD_GATEWAY.to_owned(),
            rest_url: crate::discord::rest::DISCORD_API.to_owned(),
            token,
            settings: Settings::default(),
            connect_timeout: Duration::from_secs(20),
            tls: ws::TlsTrust::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Url(#[from] ws::UrlError),
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error("could not start the engine: {0}")]
    Io(#[from] io::Error),
    #[error("the gateway did not become ready within {after:?}{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        after: Duration,
        last_error: Option<String>,
    },
}

/// The voice manager: one bot, any number of guild sessions.
pub struct Voice {
    handle: EngineHandle,
    tx: Sender<EngineMsg>,
    status: watch::Receiver<Status>,
    user_id: u64,
    join_timeout: Duration,
    next_playback: Arc<AtomicU64>,
}

impl Voice {
    /// Starts the engine and waits until the main gateway is ready.
    pub fn connect(config: VoiceConfig) -> Result<Voice, ConnectError> {
        let join_timeout = config.settings.join_timeout;
        let connect_timeout = config.connect_timeout;
        let handle = EngineHandle::start(config)?;
        let (reply, answer) = channel();
        handle.send(Command::AwaitGateway { reply });
        let user_id = match answer.recv_timeout(connect_timeout) {
            Ok(Ok(user)) => user,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(ConnectError::Timeout {
                    after: connect_timeout,
                    last_error: handle.status().borrow().gateway_trouble.clone(),
                });
            }
        };
        Ok(Voice {
            tx: handle.sender(),
            status: handle.status(),
            next_playback: handle.id_counter(),
            handle,
            user_id,
            join_timeout,
        })
    }

    /// The bot's user id (from READY).
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// A stream of connection failures (guild id, error), from now on.
    pub fn errors(&self) -> Receiver<(u64, VoiceError)> {
        let (tx, rx) = channel();
        self.send(Command::SubscribeErrors(tx));
        rx
    }

    /// The newest status snapshot; `changed()` on it wakes when something changes.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Joins a voice channel and waits (up to the join timeout) until audio can flow.
    pub fn join_channel(
        &self,
        guild_id: u64,
        channel_id: u64,
        self_mute: bool,
        self_deaf: bool,
    ) -> Result<Session, VoiceError> {
        let (reply, answer) = channel();
        self.send(Command::Join {
            guild_id,
            channel_id,
            self_mute,
            self_deaf,
            reply: Some(reply),
        });
        // The engine times the join out itself; the margin only guards against a dead engine.
        match answer.recv_timeout(self.join_timeout + Duration::from_secs(2)) {
            Ok(Ok(())) => Ok(self.session(guild_id)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(VoiceError::Timeout(self.join_timeout)),
        }
    }

    /// A handle to the session of a guild, if one is live.
    pub fn get_session(&self, guild_id: u64) -> Option<Session> {
        self.is_live(guild_id).then(|| self.session(guild_id))
    }

    /// Leaves the guild's channel (op 4 with `channel_id: null`) and waits for Discord to confirm.
    pub fn remove_session(&self, guild_id: u64) {
        let (reply, answer) = channel();
        self.send(Command::Leave {
            guild_id,
            reply: Some(reply),
        });
        let _ = answer.recv_timeout(Duration::from_secs(3));
        // The snapshot follows within a tick; wait for it so `get_session` agrees at once.
        let deadline = Instant::now() + Duration::from_millis(200);
        while Instant::now() < deadline && self.is_live(guild_id) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn is_live(&self, guild_id: u64) -> bool {
        self.status
            .borrow()
            .connections
            .iter()
            .any(|c| c.guild_id == guild_id && !c.phase.is_over())
    }

    /// Plays 48 kHz stereo samples into the targeted connections, mixed with anything playing.
    pub fn play(&self, samples: Arc<[f32]>, target: Target, gain: f32) -> PlaybackHandle {
        let mut request = PlayRequest::new(self.next_id(), samples, target);
        request.gain = gain;
        self.play_request(request)
    }

    /// Plays with every option (board sound, loop, retrigger policy).
    pub fn play_request(&self, mut request: PlayRequest) -> PlaybackHandle {
        let (done, finished) = channel();
        request.done = Some(done);
        let id = request.id;
        self.send(Command::Play(request));
        PlaybackHandle {
            id,
            finished,
            tx: self.tx.clone(),
        }
    }

    /// A fresh playback id.
    pub fn next_id(&self) -> u64 {
        self.next_playback.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends any command to the engine (gains, push-to-talk, devices, ...). Never blocks.
    pub fn command(&self, command: Command) {
        self.send(command);
    }

    pub fn stop_all(&self) {
        self.send(Command::StopAll);
    }

    /// Leaves every channel and stops the engine. Returns one error per guild that had failed.
    pub fn close(self) -> Vec<(u64, String)> {
        let failed: Vec<(u64, String)> = self
            .status
            .borrow()
            .connections
            .iter()
            .filter(|c| c.phase == super::Phase::Failed)
            .map(|c| (c.guild_id, c.reason.clone().unwrap_or_default()))
            .collect();
        self.handle.shutdown(Duration::from_secs(3));
        failed
    }

    fn session(&self, guild_id: u64) -> Session {
        Session {
            guild_id,
            tx: self.tx.clone(),
            next_playback: self.next_playback.clone(),
            paced_until: None,
        }
    }

    fn send(&self, command: Command) {
        let _ = self.tx.send(EngineMsg::Command(command));
    }
}

/// One guild's voice session.
#[derive(Debug)]
pub struct Session {
    guild_id: u64,
    tx: Sender<EngineMsg>,
    next_playback: Arc<AtomicU64>,
    /// When the last written Opus frame is due to go out (for pacing `write`).
    paced_until: Option<Instant>,
}

/// How far ahead of real time `write` lets a caller get before it waits.
const WRITE_LEAD: Duration = Duration::from_millis(100);

impl Session {
    pub fn guild_id(&self) -> u64 {
        self.guild_id
    }

    /// Sets the speaking flags (microphone, soundshare, priority) sent with op 5.
    pub fn speaking(&self, flags: u32) {
        self.send(Command::SetSpeakingFlags {
            guild_id: self.guild_id,
            flags,
        });
    }

    /// Drops queued frames; the engine then sends the five silence frames and speaking 0.
    pub fn stop_speaking(&self) {
        self.send(Command::StopSpeaking {
            guild_id: self.guild_id,
        });
    }

    /// Queues one Opus frame (20 ms, 48 kHz stereo), waiting at most `timeout` for room.
    pub fn write_opus_timeout(&mut self, frame: &[u8], timeout: Duration) -> io::Result<()> {
        let now = Instant::now();
        let due = self.paced_until.filter(|d| *d > now).unwrap_or(now) + super::TICK;
        let wait = due.saturating_duration_since(now + WRITE_LEAD);
        if wait > timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "voice send queue is full",
            ));
        }
        std::thread::sleep(wait);
        self.paced_until = Some(due);
        self.tx
            .send(EngineMsg::Command(Command::WriteOpus {
                guild_id: self.guild_id,
                frame: frame.to_vec(),
            }))
            .map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the voice engine has shut down")
            })
    }

    /// Plays 48 kHz stereo samples into this guild only.
    pub fn play_pcm(&self, samples: Arc<[f32]>) -> PlaybackHandle {
        let id = self.next_playback.fetch_add(1, Ordering::Relaxed);
        let (done, finished) = channel();
        let mut request = PlayRequest::new(id, samples, Target::Guilds(vec![self.guild_id]));
        request.done = Some(done);
        self.send(Command::Play(request));
        PlaybackHandle {
            id,
            finished,
            tx: self.tx.clone(),
        }
    }

    /// Leaves the channel (without waiting for the confirmation).
    pub fn disconnect(self) {
        self.send(Command::Leave {
            guild_id: self.guild_id,
            reply: None,
        });
    }

    fn send(&self, command: Command) {
        let _ = self.tx.send(EngineMsg::Command(command));
    }
}

/// Each `write` is one Opus frame, paced to real time (it blocks when ~100 ms ahead).
impl io::Write for Session {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_opus_timeout(buf, Duration::from_secs(5))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A playing sound.
#[derive(Debug)]
pub struct PlaybackHandle {
    id: u64,
    finished: Receiver<()>,
    tx: Sender<EngineMsg>,
}

impl PlaybackHandle {
    /// Waits until the sound has been sent whole (or was stopped).
    pub fn wait(&self) {
        let _ = self.finished.recv();
    }

    /// Like [`wait`](Self::wait), with a limit; returns whether it finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        !matches!(
            self.finished.recv_timeout(timeout),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        )
    }

    pub fn stop(&self) {
        let _ = self
            .tx
            .send(EngineMsg::Command(Command::Stop { id: self.id }));
    }
}
