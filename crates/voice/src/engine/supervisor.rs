//! The engine survives its own bugs. A panic in a tick (a system hitting a case nobody
//! foresaw) is caught on the engine thread; the world is rebuilt from what must survive, and
//! every connection the user wanted joins again. The status says what happened, in words.
//!
//! What survives: settings, the I/O runtime and the main gateway task (`Net`), what the gateway
//! told us, the status channel (so the UI's receiver stays live), error subscribers, the mix
//! settings, microphone and monitor. What does not: sounds in flight (their handles finish), the
//! voice sockets and UDP transports (they are made again by the rejoin).

use std::time::Instant;

use super::components::{ConnPhase, JoinWaiters, VoiceConn, VoiceLink, VoiceSessionInfo};
use super::status::{ErrorSubscribers, StatusOut};
use super::{ConnIndex, EngineCore, MainGatewayState, Net, Settings, mix};

/// Restarts `old` after a panic with message `why`; returns the new core.
pub fn restart(old: EngineCore, why: &str, now: Instant) -> EngineCore {
    tracing::error!("engine: internal error, restarting: {why}");
    let mut world = old.world;
    let settings = world.remove_resource::<Settings>().unwrap_or_default();
    let net = world.remove_resource::<Net>();
    let mut core = EngineCore::new(settings, net, now);

    macro_rules! carry {
        ($($t:ty),*) => {$(
            if let Some(r) = world.remove_resource::<$t>() {
                core.world.insert_resource(r);
            }
        )*};
    }
    carry!(
        StatusOut,
        ErrorSubscribers,
        MainGatewayState,
        mix::MixSettings,
        mix::MicInput,
        mix::MonitorOutput
    );
    core.world
        .resource_mut::<StatusOut>()
        .engine_restarted(format!(
            "the engine restarted after an internal error: {why}"
        ));

    // Every connection still wanted joins again through the main gateway.
    let mut wanted = world.query::<(
        &VoiceConn,
        &ConnPhase,
        &VoiceSessionInfo,
        &mut VoiceLink,
        &mut JoinWaiters,
        &super::stage::Stage,
    )>();
    let mut rejoin = Vec::new();
    for (conn, phase, info, mut link, mut waiters, stage) in wanted.iter_mut(&mut world) {
        link.close(4000);
        if phase.is_over() || matches!(phase, ConnPhase::Leaving { .. }) {
            continue;
        }
        rejoin.push((
            conn.clone(),
            info.session_id.clone(),
            std::mem::take(&mut waiters.0),
            link.generation,
            stage.clone(),
        ));
    }
    for (conn, session_id, waiters, generation, stage) in rejoin {
        let guild_id = conn.guild_id;
        let entity = core.world.spawn(super::connection::new_connection(
            guild_id,
            conn.channel_id,
            now,
        ));
        let entity = entity.id();
        let mut e = core.world.entity_mut(entity);
        *e.get_mut::<VoiceConn>().expect("spawned with it") = conn;
        // The voice state outlives the engine; the server token does not.
        e.get_mut::<VoiceSessionInfo>()
            .expect("spawned with it")
            .session_id = session_id;
        e.get_mut::<JoinWaiters>().expect("spawned with it").0 = waiters;
        // So is the place on a stage: a rejoin of the same stage brings no new voice state.
        *e.get_mut::<super::stage::Stage>().expect("spawned with it") = stage;
        // Past every generation of the old sockets, so their late events are ignored.
        e.get_mut::<VoiceLink>()
            .expect("spawned with it")
            .generation = generation + 1;
        *e.get_mut::<ConnPhase>().expect("spawned with it") = ConnPhase::Reconnecting {
            attempt: 0,
            at: now,
        };
        core.world
            .resource_mut::<ConnIndex>()
            .0
            .insert(guild_id, entity);
    }
    core
}
