//! The engine: one thread owns the `bevy_ecs` world and runs the schedule every 20 ms.
//!
//! Every input — user commands and network events from the tokio tasks — arrives on one
//! channel. The clock thread waits on it until the next deadline, queues what arrives in the
//! [`Inbox`], and runs one tick per deadline (`next = start + n × 20 ms`, so there is no drift).
//! A tick is callable directly ([`EngineCore::tick`]) for tests and benchmarks.

mod clock;
pub mod components;
mod connection;
pub mod dave;
#[doc(hidden)]
pub mod fake_network;
mod gateway_events;
pub mod handle;
pub mod members;
pub mod mix;
pub mod network;
mod playback;
pub mod stage;
pub mod status;
mod supervisor;
mod transmit;
pub mod voice;
mod voice_events;

#[cfg(test)]
mod machine_tests;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
pub use voxboard_audio::stream::Source;

use crate::discord::gateway::GatewayEvent;
use crate::discord::gateway::payloads::Guild;
use crate::discord::udp::Discovered;
use crate::discord::voice_gateway::VoiceEvent;

pub use self::clock::spawn_engine;
pub use self::components::{Phase, Target};
pub use self::handle::EngineHandle;
pub use self::network::{Net, NetRequest, Network, Outbox, TokioNetwork};
pub use self::status::{ConnStatus, Status};
pub use self::voice::{PlaybackHandle, Session, Voice, VoiceConfig};

/// One 20 ms Opus frame per tick.
pub const TICK: Duration = Duration::from_millis(20);

/// Why a voice connection failed or ended, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    #[error("authentication failed: Discord rejected the bot token")]
    AuthenticationFailed,
    #[error("the gateway refused the connection: {0}")]
    GatewayRefused(String),
    #[error("guild {0} is unknown (the bot is not a member of it)")]
    UnknownGuild(u64),
    #[error("guild {0} is unavailable (a Discord outage); try again later")]
    GuildUnavailable(u64),
    #[error(
        "another client using this bot token joined voice in this guild (a second Voxboard, or \
         `voxboard play`?); not rejoining, so the two do not fight over the bot"
    )]
    TakenOver,
    #[error("channel {channel} is not a voice channel of guild {guild}")]
    NotAVoiceChannel { guild: u64, channel: u64 },
    #[error("no voice server within {0:?} (is the channel full, or the bot missing CONNECT?)")]
    Timeout(Duration),
    #[error(
        "E2EE required: the channel only accepts end-to-end encrypted (DAVE) audio (close 4017)"
    )]
    E2eeRequired,
    #[error("the voice server offered no encryption mode we support: {0:?}")]
    NoSupportedMode(Vec<String>),
    #[error("voice connection closed ({code}: {reason})")]
    Closed { code: u16, reason: &'static str },
    /// Discord closed the live connection (4014) and took the bot out of the channel: someone
    /// disconnected it. Never rejoined by itself.
    #[error(
        "disconnected from the voice channel by someone in the server (or the channel was deleted)"
    )]
    Kicked,
    /// In a stage, still in the audience when the join timed out: the line says why.
    #[error("{0}")]
    StageSuppressed(String),
    #[error("gave up after {0} reconnect attempts")]
    GaveUp(u32),
    #[error("the engine has shut down")]
    ShutDown,
}

/// A request from the API, the UI or the CLI.
pub enum Command {
    Join {
        guild_id: u64,
        channel_id: u64,
        self_mute: bool,
        self_deaf: bool,
        reply: Option<Sender<Result<(), VoiceError>>>,
    },
    Leave {
        guild_id: u64,
        reply: Option<Sender<()>>,
    },
    Play(PlayRequest),
    /// Stops one playback (with a short fade).
    Stop {
        id: u64,
    },
    /// Stops every playback of a board sound.
    StopSound {
        sound: u64,
    },
    StopAll,
    SetMasterGain(f32),
    SetGuildGain {
        guild_id: u64,
        gain: f32,
    },
    /// Push-to-talk held (`true`) or released.
    PushToTalk(bool),
    SetMicGain(f32),
    /// The guilds the microphone goes to while push-to-talk is held (`Target::All` at start;
    /// `Target::Monitor` sends it nowhere).
    SetMicTarget(Target),
    SetMonitor {
        gain: f32,
        include_mic: bool,
    },
    /// Installs (or removes) the microphone the mix reads from.
    SetMic(Option<mix::Exclusive<dyn mix::MicSource>>),
    /// Installs (or removes) the local monitor output.
    SetMonitorSink(Option<mix::Exclusive<dyn mix::MonitorSink>>),
    /// One Opus frame for one guild, sent as is (after the frames queued before it).
    WriteOpus {
        guild_id: u64,
        frame: Vec<u8>,
    },
    SetSpeakingFlags {
        guild_id: u64,
        flags: u32,
    },
    /// Sends the silence frames and speaking 0 now, dropping queued frames.
    StopSpeaking {
        guild_id: u64,
    },
    /// Waits until the main gateway is identified and every guild of READY has arrived.
    AwaitGateway {
        reply: Sender<Result<u64, VoiceError>>,
    },
    /// Every connection failure from now on is sent here as `(guild_id, error)`.
    SubscribeErrors(Sender<(u64, VoiceError)>),
    /// Members joining the voice channel the bot is in, from now on.
    SubscribeMemberJoins(Sender<members::MemberJoin>),
    Shutdown,
    /// Makes the next tick panic, to prove the supervisor (for tests; harmless otherwise: the
    /// engine restarts and rejoins).
    InjectPanic,
}

/// What a play command does when the same board sound is already playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Retrigger {
    /// Play again on top of it.
    #[default]
    Overlap,
    /// Start it over from the beginning.
    Restart,
    /// Stop it instead (the button toggles).
    Stop,
    /// Do nothing while it plays.
    Ignore,
}

/// A sound to play.
pub struct PlayRequest {
    pub id: u64,
    /// The board sound, for retrigger policies and progress (None for one-off audio).
    pub sound: Option<u64>,
    /// The sound: decoded 48 kHz stereo interleaved, or a long clip streamed from disk.
    pub source: Source,
    pub target: Target,
    pub gain: f32,
    pub looped: bool,
    pub retrigger: Retrigger,
    /// A choke group: starting this sound stops every other playing sound of the same group
    /// (newest wins, with the stop fade). `None` chokes nothing.
    pub choke: Option<u32>,
    /// Trim and fades (the samples stay as they are; the cursor plays a window of them).
    pub shape: voxboard_audio::shaping::Shape,
    /// Signalled when the sound has finished (or was stopped).
    pub done: Option<Sender<()>>,
}

impl PlayRequest {
    pub fn new(id: u64, source: impl Into<Source>, target: Target) -> Self {
        Self {
            id,
            sound: None,
            source: source.into(),
            target,
            gain: 1.0,
            looped: false,
            retrigger: Retrigger::Overlap,
            choke: None,
            shape: Default::default(),
            done: None,
        }
    }
}

/// What the I/O tasks report.
pub enum NetEvent {
    Gateway(GatewayEvent),
    Voice {
        guild_id: u64,
        generation: u32,
        event: VoiceEvent,
    },
    Discovered {
        guild_id: u64,
        generation: u32,
        result: Result<(std::net::UdpSocket, Discovered), String>,
    },
    /// The answer to a stage speaker request.
    Speak {
        guild_id: u64,
        channel_id: u64,
        outcome: crate::discord::rest::SpeakOutcome,
    },
}

pub enum EngineMsg {
    Command(Command),
    Net(NetEvent),
}

/// Inputs that arrived since the last tick.
#[derive(Resource, Default)]
pub struct Inbox {
    pub commands: Vec<Command>,
    pub net: Vec<NetEvent>,
}

/// The tick's notion of now (a fake clock in tests and benchmarks).
#[derive(Resource, Clone, Copy)]
pub struct Now(pub Instant);

#[derive(Resource, Clone)]
pub struct Settings {
    pub join_timeout: Duration,
    pub bitrate: u32,
    /// Offered in voice Identify: 1 (DAVE) by default; 0 only to test a non-DAVE client.
    pub max_dave_protocol_version: u16,
    pub max_rejoin_attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            join_timeout: Duration::from_secs(10),
            bitrate: 128_000,
            max_dave_protocol_version: dave::MAX_PROTOCOL_VERSION,
            max_rejoin_attempts: 5,
        }
    }
}

/// How long after READY (or the last GUILD_CREATE) the engine waits for the remaining guilds
/// before it goes on without them. Discord sends the GUILD_CREATEs of available guilds right
/// after READY; one still missing is in an outage and may stay so for hours (discord.py waits
/// 2 s the same way before `on_ready`).
pub const GUILD_WAIT: Duration = Duration::from_secs(2);

/// What the main gateway has told us.
#[derive(Resource, Default)]
pub struct MainGatewayState {
    pub user_id: Option<u64>,
    /// Our main gateway session: a voice state of our user with another session id is another
    /// client using the same bot token.
    pub session_id: Option<String>,
    pub guilds: HashMap<u64, Guild>,
    /// Guilds named in READY whose GUILD_CREATE has not arrived yet.
    pub pending_guilds: HashSet<u64>,
    /// When READY or the last GUILD_CREATE arrived: guilds still pending [`GUILD_WAIT`] later
    /// are taken as unavailable.
    pub last_guild_event: Option<Instant>,
    /// Guilds in an outage: listed in READY, no GUILD_CREATE yet.
    pub unavailable: HashSet<u64>,
    pub ready: bool,
    /// False from a lost main connection until READY or RESUMED: a 4014 seen meanwhile cannot
    /// be explained by the main gateway yet, so its grace waits for the gateway to be back.
    pub connected: bool,
    pub fatal: Option<VoiceError>,
    pub waiters: Vec<Sender<Result<u64, VoiceError>>>,
    pub reconnects: u32,
    /// Why the last connection attempt failed, while reconnecting (cleared once connected).
    pub trouble: Option<String>,
    /// Other members' voice channels, for entrance sounds.
    pub members: members::MemberWatch,
}

/// Guild id → connection entity.
#[derive(Resource, Default)]
pub struct ConnIndex(pub HashMap<u64, Entity>);

/// The world and schedule: everything a tick needs.
pub struct EngineCore {
    pub world: World,
    schedule: Schedule,
}

impl EngineCore {
    pub fn new(settings: Settings, net: Option<Net>, now: Instant) -> Self {
        let mut world = World::new();
        world.insert_resource(Inbox::default());
        world.insert_resource(Outbox::default());
        world.insert_resource(Now(now));
        world.insert_resource(MainGatewayState::default());
        world.insert_resource(ConnIndex::default());
        world.insert_resource(mix::Mixer::new(settings.bitrate));
        world.insert_resource(mix::MixSettings::default());
        world.insert_resource(mix::MicInput::default());
        world.insert_resource(mix::MonitorOutput::default());
        world.insert_resource(status::StatusOut::default());
        world.insert_resource(status::ErrorSubscribers::default());
        world.insert_resource(settings);
        if let Some(net) = net {
            world.insert_resource(net);
        }
        let mut schedule = Schedule::default();
        schedule.add_systems(
            (
                playback::ingest_playback_commands,
                connection::ingest_commands,
                gateway_events::ingest_net_events,
                gateway_events::settle_unavailable_guilds,
                stage::ask_to_speak,
                connection::run_timers,
                mix::read_mic,
                mix::load_streams,
                mix::mix_and_encode,
                mix::feed_monitor,
                transmit::transmit,
                mix::advance_playbacks,
                status::report_failures,
                connection::leave_after_failure,
                status::publish_status,
                network::perform_requests,
            )
                .chain(),
        );
        Self { world, schedule }
    }

    /// Runs one 20 ms tick at `now`.
    pub fn tick(&mut self, now: Instant) {
        self.world.resource_mut::<Now>().0 = now;
        self.schedule.run(&mut self.world);
    }

    pub fn push(&mut self, msg: EngineMsg) {
        let mut inbox = self.world.resource_mut::<Inbox>();
        match msg {
            EngineMsg::Command(c) => inbox.commands.push(c),
            EngineMsg::Net(n) => inbox.net.push(n),
        }
    }

    /// How many distinct mixes (Opus encodes) the last tick made.
    #[doc(hidden)]
    pub fn mix_count(&self) -> usize {
        self.world.resource::<mix::Mixer>().groups.len()
    }

    /// Whether any sound is playing or any connection still owes silence frames.
    pub fn is_busy(&mut self) -> bool {
        let playing = self
            .world
            .query::<&components::Playback>()
            .iter(&self.world)
            .next()
            .is_some();
        let speaking = self
            .world
            .query::<&components::Speaking>()
            .iter(&self.world)
            .any(|s| s.asserted);
        playing || speaking
    }
}

impl EngineCore {
    /// Adds a connection that is already past the handshake, sending to `socket`'s peer.
    /// For benchmarks and tests of the tick alone (no gateways involved).
    #[doc(hidden)]
    pub fn add_ready_connection(
        &mut self,
        guild_id: u64,
        socket: std::net::UdpSocket,
        ssrc: u32,
        mode: crate::discord::crypto::TransportMode,
        key: &[u8; 32],
    ) {
        use components::*;
        let cipher = crate::discord::crypto::TransportCipher::new(mode, key).expect("32-byte key");
        let now = self.world.resource::<Now>().0;
        let entity = self
            .world
            .spawn((
                VoiceConn {
                    guild_id,
                    channel_id: guild_id,
                    self_mute: false,
                    self_deaf: false,
                },
                ConnPhase::Ready,
                VoiceSessionInfo::default(),
                VoiceLink::default(),
                Transport(Some(UdpTransport {
                    socket,
                    rtp: crate::discord::rtp::RtpStream::new(ssrc),
                    cipher,
                    packet: Vec::with_capacity(1500),
                    last_sent: now,
                    in_flight: None,
                })),
                Speaking::default(),
                ConnStats::default(),
                JoinWaiters::default(),
                OpusQueue::default(),
                dave::Dave::default(),
                dave::CallMembers::default(),
                GuildGain::default(),
                stage::Stage::default(),
            ))
            .id();
        self.world
            .resource_mut::<ConnIndex>()
            .0
            .insert(guild_id, entity);
    }

    /// Gives a connection added by [`add_ready_connection`](Self::add_ready_connection) an
    /// established DAVE session, and names `peer` as the call's other member.
    #[doc(hidden)]
    pub fn set_dave_session(&mut self, guild_id: u64, session: davey::DaveSession, peer: u64) {
        let Some(entity) = self.world.resource::<ConnIndex>().0.get(&guild_id).copied() else {
            return;
        };
        let mut members = dave::CallMembers::default();
        members.0.insert(peer);
        self.world
            .entity_mut(entity)
            .insert((dave::Dave::with_session(session), members));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that keeps writing while its connection cannot send must not grow memory
    /// without bound: the per-guild Opus queue keeps the newest five seconds.
    #[test]
    fn the_opus_queue_is_bounded() {
        let mut core = EngineCore::new(Settings::default(), None, Instant::now());
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(sink.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let mode = crate::discord::crypto::TransportMode::AeadAes256GcmRtpsize;
        core.add_ready_connection(1, socket, 1, mode, &[7; 32]);
        use components::OpusQueue;
        for i in 0..(OpusQueue::LIMIT + 150) {
            core.push(EngineMsg::Command(Command::WriteOpus {
                guild_id: 1,
                frame: vec![i as u8; 10],
            }));
        }
        core.tick(Instant::now());
        let queue = core
            .world
            .query::<&components::OpusQueue>()
            .single(&core.world)
            .unwrap();
        assert!(
            queue.0.len() <= OpusQueue::LIMIT,
            "{} frames queued",
            queue.0.len()
        );
        // The newest frames are the ones kept.
        assert_eq!(queue.0.back().unwrap()[0], (OpusQueue::LIMIT + 149) as u8);
    }
}
