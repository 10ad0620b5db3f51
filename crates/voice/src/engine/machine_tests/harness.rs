//! A connection state machine on a fake clock and a [`FakeNetwork`]: the test plays Discord,
//! answering each request with the events a server would send, and reads what the engine asked
//! for next.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::discord::gateway::GatewayEvent;
use crate::discord::gateway::payloads::{Channel, ChannelKind, Guild, VoiceServer, VoiceState};
use crate::discord::rest::SpeakOutcome;
use crate::discord::udp::Discovered;
use crate::discord::voice_gateway::payloads::{Ready, SessionDescription};
use crate::discord::voice_gateway::{Opening, VoiceCommand, VoiceEvent};
use crate::discord::ws::Token;
use crate::engine::components::{ConnPhase, Speaking, VoiceLink};
use crate::engine::fake_network::FakeNetwork;
use crate::engine::network::{Net, NetRequest};
use crate::engine::status::{ConnStatus, Status, StatusOut};
use crate::engine::{Command, EngineCore, EngineMsg, NetEvent, Settings, TICK, VoiceError};

pub const USER: u64 = 10;
pub const GUILD: u64 = 1;
/// A second guild, for READY lists.
pub const OTHER_GUILD: u64 = 2;
pub const VOICE: u64 = 100;
pub const OTHER_VOICE: u64 = 101;
pub const STAGE: u64 = 200;
pub const TEXT: u64 = 300;
/// READY's session id: our voice states carry it, and voice Identify sends it back.
pub const MAIN_SESSION: &str = "main-session";

/// What the engine asked the network for, in a form a test can compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// Op 4 on the main gateway.
    VoiceState {
        channel: Option<u64>,
    },
    CloseGateway,
    Identify {
        token: String,
        session: String,
    },
    Resume {
        seq_ack: i64,
    },
    Discover,
    AskToSpeak {
        channel: u64,
    },
}

pub struct Machine {
    core: EngineCore,
    net: Arc<FakeNetwork>,
    pub now: Instant,
    /// The voice socket the engine opened last: its commands (op 1, op 5, closes).
    voice_commands: Option<UnboundedReceiver<VoiceCommand>>,
    status: tokio::sync::watch::Receiver<Status>,
    /// Where the fake media socket's packets go (so sends succeed).
    media_sink: std::net::UdpSocket,
}

impl Machine {
    /// A fresh engine: nothing received from the main gateway yet.
    pub fn new() -> Self {
        let net = Arc::new(FakeNetwork::default());
        let now = Instant::now();
        let core = EngineCore::new(
            Settings::default(),
            Some(Net {
                network: net.clone(),
                gateway_url: url::Url::parse("wss://gateway.discord.gg").expect("url"),
            }),
            now,
        );
        let status = core.world.resource::<StatusOut>().subscribe();
        Self {
            core,
            net,
            now,
            voice_commands: None,
            status,
            media_sink: std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"),
        }
    }

    /// READY for one guild, its GUILD_CREATE (a voice channel, a second one, a stage and a text
    /// channel), one tick.
    pub fn connected() -> Self {
        let mut m = Self::new();
        m.gateway(ready(&[GUILD]));
        m.gateway(GatewayEvent::Guild(guild(GUILD)));
        m
    }

    /// Joined [`VOICE`] with both dispatches: the voice socket is open and Identify sent, with
    /// nothing answered yet.
    pub fn identifying() -> Self {
        let mut m = Self::connected();
        let _reply = m.join(VOICE);
        assert_eq!(
            m.asked(),
            [Asked::VoiceState {
                channel: Some(VOICE)
            }]
        );
        m.gateway(our_voice_state(Some(VOICE)));
        m.gateway(voice_server("token-1"));
        assert_eq!(m.asked(), [identify("token-1")]);
        m
    }

    /// [`Machine::identifying`], then the voice handshake answered: audio can flow.
    pub fn in_call() -> Self {
        let mut m = Self::identifying();
        m.answer_handshake();
        m
    }

    /// The card's last error (within 100 ms) says `words`.
    pub fn assert_card_error(&mut self, words: &str) {
        let card = self.card();
        assert!(
            card.last_error
                .as_deref()
                .is_some_and(|e| e.contains(words)),
            "no {words:?} on the card: {card:?}"
        );
    }

    /// One 20 ms tick.
    pub fn tick(&mut self) {
        self.now += TICK;
        self.core.tick(self.now);
    }

    /// Ticks until `d` has passed.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.tick();
        }
    }

    /// Ticks (at most `limit`) until the engine asks for something; returns how long that took
    /// and what it asked.
    pub fn wait_for_request(&mut self, limit: Duration) -> (Duration, Vec<Asked>) {
        let start = self.now;
        while self.now - start < limit {
            self.tick();
            let asked = self.asked();
            if !asked.is_empty() {
                return (self.now - start, asked);
            }
        }
        (limit, Vec::new())
    }

    pub fn gateway(&mut self, event: GatewayEvent) {
        self.net_event(NetEvent::Gateway(event));
    }

    /// An event from the current voice socket.
    pub fn voice(&mut self, event: VoiceEvent) {
        let generation = self.link_generation();
        self.net_event(NetEvent::Voice {
            guild_id: GUILD,
            generation,
            event,
        });
    }

    /// The voice socket ended with `code` (`None`: dropped without a close frame).
    pub fn voice_closed(&mut self, code: Option<u16>) {
        self.voice(VoiceEvent::Closed {
            code,
            last_seq: 12,
            error: None,
        });
    }

    pub fn speak_answer(&mut self, channel_id: u64, outcome: SpeakOutcome) {
        self.net_event(NetEvent::Speak {
            guild_id: GUILD,
            channel_id,
            outcome,
        });
    }

    fn net_event(&mut self, event: NetEvent) {
        self.core.push(EngineMsg::Net(event));
        self.tick();
    }

    pub fn command(&mut self, command: Command) {
        self.core.push(EngineMsg::Command(command));
        self.tick();
    }

    /// Asks to join `channel` of [`GUILD`]; the receiver gets the join's outcome.
    pub fn join(&mut self, channel: u64) -> mpsc::Receiver<Result<(), VoiceError>> {
        self.join_guild(GUILD, channel)
    }

    pub fn join_guild(
        &mut self,
        guild: u64,
        channel: u64,
    ) -> mpsc::Receiver<Result<(), VoiceError>> {
        let (tx, rx) = mpsc::channel();
        self.command(Command::Join {
            guild_id: guild,
            channel_id: channel,
            self_mute: false,
            self_deaf: true,
            reply: Some(tx),
        });
        rx
    }

    /// Plays the voice server through a fresh socket's handshake: Ready, IP discovery, Select
    /// Protocol, Session Description (no DAVE). Ends with audio able to flow.
    pub fn answer_handshake(&mut self) {
        self.voice(VoiceEvent::Connected);
        self.voice(VoiceEvent::Ready(Ready {
            ssrc: 7,
            ip: "192.0.2.1".into(),
            port: 50_000,
            modes: vec!["aead_aes256_gcm_rtpsize".into()],
        }));
        assert_eq!(self.asked(), [Asked::Discover]);
        assert_eq!(self.phase(), ConnPhase::Discovering);
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .connect(self.media_sink.local_addr().expect("addr"))
            .expect("connect");
        socket.set_nonblocking(true).expect("nonblocking");
        let generation = self.link_generation();
        self.net_event(NetEvent::Discovered {
            guild_id: GUILD,
            generation,
            result: Ok((
                socket,
                Discovered {
                    address: "203.0.113.9".into(),
                    port: 40_000,
                },
            )),
        });
        assert_eq!(self.phase(), ConnPhase::Selecting);
        let select = self.voice_json();
        assert!(
            select.contains(r#""op":1"#) && select.contains("aead_aes256_gcm_rtpsize"),
            "{select}"
        );
        self.voice(VoiceEvent::SessionDescription(SessionDescription {
            mode: "aead_aes256_gcm_rtpsize".into(),
            secret_key: vec![3; 32],
            dave_protocol_version: 0,
        }));
        assert_eq!(self.phase(), ConnPhase::Ready);
    }

    /// What the engine asked the network for since the last call.
    pub fn asked(&mut self) -> Vec<Asked> {
        self.net
            .take()
            .into_iter()
            .map(|request| match request {
                NetRequest::UpdateVoiceState { channel_id, .. } => Asked::VoiceState {
                    channel: channel_id,
                },
                NetRequest::CloseGateway => Asked::CloseGateway,
                NetRequest::OpenVoice {
                    config, commands, ..
                } => {
                    self.voice_commands = Some(commands);
                    match config.opening {
                        Opening::Identify { .. } => Asked::Identify {
                            token: config.credentials.token.expose().to_owned(),
                            session: config.credentials.session_id,
                        },
                        Opening::Resume { seq_ack } => Asked::Resume { seq_ack },
                    }
                }
                NetRequest::Discover { .. } => Asked::Discover,
                NetRequest::RequestToSpeak { channel_id, .. } => Asked::AskToSpeak {
                    channel: channel_id,
                },
            })
            .collect()
    }

    /// The next JSON payload the engine gave the current voice socket.
    pub fn voice_json(&mut self) -> String {
        let commands = self
            .voice_commands
            .as_mut()
            .expect("a voice socket was opened");
        loop {
            match commands.try_recv() {
                Ok(VoiceCommand::Json(json)) => return json,
                Ok(_) => continue,
                Err(e) => panic!("no JSON for the voice socket: {e}"),
            }
        }
    }

    pub fn phase(&mut self) -> ConnPhase {
        self.core
            .world
            .query::<&ConnPhase>()
            .iter(&self.core.world)
            .next()
            .cloned()
            .expect("a connection")
    }

    pub fn speaking(&mut self) -> Speaking {
        let mut q = self.core.world.query::<&Speaking>();
        let s = q.iter(&self.core.world).next().expect("a connection");
        Speaking { ..*s }
    }

    /// Recent rejoins the connection still holds against the server.
    pub fn flaps(&mut self) -> u32 {
        self.core
            .world
            .query::<&VoiceLink>()
            .iter(&self.core.world)
            .next()
            .map_or(0, |l| l.flaps)
    }

    fn link_generation(&mut self) -> u32 {
        self.core
            .world
            .query::<&VoiceLink>()
            .iter(&self.core.world)
            .next()
            .map_or(0, |l| l.generation)
    }

    /// The connection as the panel shows it (published within 100 ms).
    pub fn card(&mut self) -> ConnStatus {
        self.advance(Duration::from_millis(100));
        self.status
            .borrow()
            .connections
            .first()
            .cloned()
            .expect("a connection card")
    }
}

pub fn identify(token: &str) -> Asked {
    Asked::Identify {
        token: token.into(),
        session: MAIN_SESSION.into(),
    }
}

pub fn ready(guilds: &[u64]) -> GatewayEvent {
    GatewayEvent::Ready {
        user_id: USER,
        session_id: MAIN_SESSION.into(),
        guild_ids: guilds.to_vec(),
    }
}

pub fn guild(id: u64) -> Guild {
    let channel = |id, kind| Channel {
        id,
        name: format!("channel {id}"),
        kind,
        bitrate: None,
    };
    Guild {
        id,
        name: format!("guild {id}"),
        channels: vec![
            channel(VOICE, ChannelKind::Voice),
            channel(OTHER_VOICE, ChannelKind::Voice),
            channel(STAGE, ChannelKind::Stage),
            channel(TEXT, ChannelKind::Other(0)),
        ],
        voice_states: Vec::new(),
    }
}

/// Our bot's voice state in [`GUILD`], in this gateway session.
pub fn our_voice_state(channel: Option<u64>) -> GatewayEvent {
    voice_state(channel, MAIN_SESSION, false)
}

/// Our bot's voice state in [`GUILD`] as gateway session `session` sees it (Discord's voice
/// state carries the main gateway session id).
pub fn voice_state(channel: Option<u64>, session: &str, suppress: bool) -> GatewayEvent {
    GatewayEvent::VoiceState(VoiceState {
        guild_id: GUILD,
        user_id: USER,
        channel_id: channel,
        session_id: session.into(),
        suppress,
        hand_raised: false,
    })
}

pub fn voice_server(token: &str) -> GatewayEvent {
    GatewayEvent::VoiceServer(VoiceServer {
        guild_id: GUILD,
        token: Token::new(token),
        endpoint: Some("c-ams01.discord.media:443".into()),
    })
}
