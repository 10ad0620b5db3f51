//! The status snapshot the UI and CLI read: published a few times a second, never blocking.

use std::time::Duration;

use bevy_ecs::prelude::*;
use tokio::sync::watch;

use super::MainGatewayState;
use super::components::*;

/// One guild connection as a panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnStatus {
    pub guild_id: u64,
    pub channel_id: u64,
    pub phase: &'static str,
    /// Set when the phase is failed or disconnected: why, in plain words.
    pub reason: Option<String>,
    pub endpoint: Option<String>,
    pub mode: Option<&'static str>,
    pub speaking: bool,
    pub packets: u64,
    pub bytes: u64,
    pub heartbeat_rtt: Option<Duration>,
    pub last_close: Option<u16>,
    pub resumes: u32,
    pub rejoins: u32,
    pub moves: u32,
    pub dave: super::dave::DaveStatus,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub gateway_ready: bool,
    pub gateway_error: Option<String>,
    pub gateway_reconnects: u32,
    pub connections: Vec<ConnStatus>,
    pub playing: usize,
}

#[derive(Resource)]
pub struct StatusOut {
    tx: watch::Sender<Status>,
    ticks: u32,
}

impl Default for StatusOut {
    fn default() -> Self {
        Self {
            tx: watch::channel(Status::default()).0,
            ticks: 0,
        }
    }
}

impl StatusOut {
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.tx.subscribe()
    }
}

/// Every 5th tick (100 ms), and at once when a phase changes; receivers are woken only when
/// something changed.
const PUBLISH_EVERY: u32 = 5;

pub fn publish_status(
    mut out: ResMut<StatusOut>,
    gateway: Res<MainGatewayState>,
    conns: Query<(
        &VoiceConn,
        Ref<ConnPhase>,
        &Speaking,
        &ConnStats,
        &super::dave::Dave,
    )>,
    playbacks: Query<&Playback>,
) {
    out.ticks = out.ticks.wrapping_add(1);
    let phase_changed = conns.iter().any(|(_, phase, ..)| phase.is_changed());
    if !out.ticks.is_multiple_of(PUBLISH_EVERY) && !phase_changed {
        return;
    }
    let mut connections: Vec<ConnStatus> = conns
        .iter()
        .map(|(conn, phase, speaking, stats, dave)| ConnStatus {
            guild_id: conn.guild_id,
            channel_id: conn.channel_id,
            phase: phase.name(),
            reason: match &*phase {
                ConnPhase::Failed { error } => Some(error.to_string()),
                ConnPhase::Disconnected { reason } => Some(reason.clone()),
                _ => None,
            },
            endpoint: stats.endpoint.clone(),
            mode: stats.mode,
            speaking: speaking.asserted,
            packets: stats.packets,
            bytes: stats.bytes,
            heartbeat_rtt: stats.heartbeat_rtt,
            last_close: stats.last_close,
            resumes: stats.resumes,
            rejoins: stats.rejoins,
            moves: stats.moves,
            dave: dave.status(),
        })
        .collect();
    connections.sort_by_key(|c| c.guild_id);
    let status = Status {
        gateway_ready: gateway.ready,
        gateway_error: gateway.fatal.as_ref().map(ToString::to_string),
        gateway_reconnects: gateway.reconnects,
        connections,
        playing: playbacks.iter().count(),
    };
    out.tx.send_if_modified(|current| {
        if *current == status {
            false
        } else {
            *current = status;
            true
        }
    });
}
