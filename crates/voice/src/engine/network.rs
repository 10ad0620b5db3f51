//! The engine's edge to the network, sans-IO: no system opens a socket or spawns a task. A
//! system that wants something from the network pushes a [`NetRequest`] to the [`Outbox`]; at
//! the end of each tick [`perform_requests`] hands them, in order, to the [`Network`]: tokio
//! tasks in the app ([`TokioNetwork`]), a recorder in the state machine's unit tests. What the
//! network learns comes back as [`NetEvent`](super::NetEvent)s through the inbox, so the whole
//! connection state machine runs on the tick's clock and can be driven without sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use bevy_ecs::prelude::*;
use tokio::sync::mpsc::UnboundedReceiver;
use url::Url;

use super::{EngineMsg, NetEvent};
use crate::discord::gateway::GatewayCommand;
use crate::discord::voice_gateway::{self, VoiceCommand, VoiceGatewayConfig};
use crate::discord::{rest, udp, ws};

/// Something the state machine asks of the network.
pub enum NetRequest {
    /// Op 4 on the main gateway: join or move (`Some(channel)`), or leave (`None`).
    UpdateVoiceState {
        guild_id: u64,
        channel_id: Option<u64>,
        self_mute: bool,
        self_deaf: bool,
    },
    /// Close the main gateway (the engine is shutting down).
    CloseGateway,
    /// Open a voice websocket and Identify or Resume on it. It reports as
    /// `NetEvent::Voice { generation, .. }` and sends what arrives on `commands`; it ends when
    /// `commands` says close (or its sender is dropped).
    OpenVoice {
        generation: u32,
        config: VoiceGatewayConfig,
        commands: UnboundedReceiver<VoiceCommand>,
    },
    /// IP discovery towards the media server; answered with `NetEvent::Discovered`.
    Discover {
        guild_id: u64,
        generation: u32,
        server: SocketAddr,
        ssrc: u32,
    },
    /// Ask to speak on a stage (Discord's REST API); answered with `NetEvent::Speak`.
    RequestToSpeak { guild_id: u64, channel_id: u64 },
}

impl NetRequest {
    /// A short name for logs and test failures.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UpdateVoiceState { .. } => "update voice state (op 4)",
            Self::CloseGateway => "close the main gateway",
            Self::OpenVoice { .. } => "open a voice socket",
            Self::Discover { .. } => "IP discovery",
            Self::RequestToSpeak { .. } => "request to speak",
        }
    }
}

/// Performs the engine's requests. Must not block: it is called on the engine thread, inside
/// the tick.
pub trait Network: Send + Sync + 'static {
    fn perform(&self, request: NetRequest);
}

/// The requests of the current tick, in the order the systems made them.
#[derive(Resource, Default)]
pub struct Outbox(pub Vec<NetRequest>);

impl Outbox {
    pub fn push(&mut self, request: NetRequest) {
        self.0.push(request);
    }

    pub fn update_voice_state(
        &mut self,
        guild_id: u64,
        channel_id: Option<u64>,
        self_mute: bool,
        self_deaf: bool,
    ) {
        self.push(NetRequest::UpdateVoiceState {
            guild_id,
            channel_id,
            self_mute,
            self_deaf,
        });
    }
}

/// The network the engine talks through. Absent in network-free benchmarks, where the
/// connection systems do nothing.
#[derive(Resource, Clone)]
pub struct Net {
    pub network: Arc<dyn Network>,
    /// The main gateway's URL: a plain `ws://` voice endpoint is allowed only when this is a
    /// loopback address (the simulator).
    pub gateway_url: Url,
}

/// The one I/O executor: hands this tick's requests to the network.
pub fn perform_requests(mut outbox: ResMut<Outbox>, net: Option<Res<Net>>) {
    let requests = std::mem::take(&mut outbox.0);
    let Some(net) = net else { return };
    for request in requests {
        net.network.perform(request);
    }
}

/// The real network: tokio tasks on the I/O runtime.
pub struct TokioNetwork {
    pub runtime: tokio::runtime::Handle,
    /// What `wss://` trusts, for the voice gateways too.
    pub tls: ws::TlsTrust,
    pub to_engine: Sender<EngineMsg>,
    pub gateway: tokio::sync::mpsc::UnboundedSender<GatewayCommand>,
    pub rest: rest::RestClient,
}

impl Network for TokioNetwork {
    fn perform(&self, request: NetRequest) {
        match request {
            NetRequest::UpdateVoiceState {
                guild_id,
                channel_id,
                self_mute,
                self_deaf,
            } => {
                let _ = self.gateway.send(GatewayCommand::UpdateVoiceState {
                    guild_id,
                    channel_id,
                    self_mute,
                    self_deaf,
                });
            }
            NetRequest::CloseGateway => {
                let _ = self.gateway.send(GatewayCommand::Shutdown);
            }
            NetRequest::OpenVoice {
                generation,
                config,
                commands,
            } => {
                let guild_id = config.credentials.guild_id;
                let to_engine = self.to_engine.clone();
                let sink = Arc::new(move |event| {
                    let _ = to_engine.send(EngineMsg::Net(NetEvent::Voice {
                        guild_id,
                        generation,
                        event,
                    }));
                });
                let _enter = self.runtime.enter();
                voice_gateway::spawn(config, self.tls.clone(), commands, sink);
            }
            NetRequest::Discover {
                guild_id,
                generation,
                server,
                ssrc,
            } => {
                let to_engine = self.to_engine.clone();
                self.runtime.spawn(async move {
                    let result = udp::discover(server, ssrc).await.map_err(|e| e.to_string());
                    let _ = to_engine.send(EngineMsg::Net(NetEvent::Discovered {
                        guild_id,
                        generation,
                        result,
                    }));
                });
            }
            NetRequest::RequestToSpeak {
                guild_id,
                channel_id,
            } => {
                let (rest, to_engine) = (self.rest.clone(), self.to_engine.clone());
                self.runtime.spawn(async move {
                    let outcome = rest.request_to_speak(guild_id, channel_id).await;
                    let _ = to_engine.send(EngineMsg::Net(NetEvent::Speak {
                        guild_id,
                        channel_id,
                        outcome,
                    }));
                });
            }
        }
    }
}
