//! Answers API requests on the UI thread, against the app's [`Core`], through the methods the
//! panels use: an API play is a click, an API stop-all is the Stop all button. Nothing here
//! waits; the answers are built from the board and the newest engine status.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::bridge::{Reply, Request};
use super::error::{Answer, ApiError};
use super::server::ApiServer;
use crate::board::Sound;
use crate::ui::core::{Core, PlayOutcome};

/// Calls answered per frame at most; more wait for the next frame (asked for at once), so a
/// burst cannot make one frame long.
const PER_FRAME: usize = 32;

/// Answers the calls waiting for the UI thread. Returns whether more are waiting.
pub fn answer_calls(server: &ApiServer, core: &mut Core) -> bool {
    let calls = server.take_calls(PER_FRAME);
    let more = calls.len() == PER_FRAME;
    for call in calls {
        let reply = answer(core, call.request.clone(), server.ptt_hold);
        call.answer(reply);
    }
    more
}

/// One request's answer; an API push-to-talk hold lasts `ptt_hold` unless renewed.
pub fn answer(core: &mut Core, request: Request, ptt_hold: Duration) -> Reply {
    match request {
        Request::Sounds => Ok(Answer::ok(sounds(core))),
        Request::PlayId(id) => play(core, id),
        Request::PlayName(name) => {
            let id = find_by_name(core, &name)?;
            play(core, id)
        }
        Request::StopSound(id) => {
            let sound = known(core, id)?;
            core.stop_sound(id);
            Ok(Answer::ok(json!({"stopped": sound})))
        }
        Request::StopAll => {
            core.stop_all();
            Ok(Answer::ok(json!({"stopped": "all"})))
        }
        Request::PushToTalk(down) => {
            // The app ORs this with the button and the hotkey every frame, and lets go of it
            // when the hold runs out (`VoxApp::tick`).
            core.ptt_remote = down.then(|| Instant::now() + ptt_hold);
            let mut body = json!({"push_to_talk": down});
            if down {
                body["release_after_s"] = json!(ptt_hold.as_secs_f64());
            }
            Ok(Answer::ok(body))
        }
        Request::MasterVolume(v) => {
            core.board.settings.master_volume = v;
            core.apply_mix_settings();
            core.save();
            Ok(Answer::ok(json!({"master": v})))
        }
        Request::Status => Ok(Answer::ok(status(core))),
    }
}

/// A sound as the API shows it.
fn sound_json(tab: &str, s: &Sound) -> Value {
    json!({"id": s.id, "name": s.name, "tab": tab})
}

fn all_sounds(core: &Core) -> impl Iterator<Item = (&str, &Sound)> {
    core.board
        .tabs
        .iter()
        .flat_map(|t| t.sounds.iter().map(move |s| (t.name.as_str(), s)))
}

fn sounds(core: &Core) -> Value {
    let tabs: Vec<&str> = core.board.tabs.iter().map(|t| t.name.as_str()).collect();
    let sounds: Vec<Value> = all_sounds(core).map(|(t, s)| sound_json(t, s)).collect();
    json!({"tabs": tabs, "sounds": sounds})
}

/// The sound with this id, as JSON, or 404.
fn known(core: &Core, id: u64) -> Result<Value, ApiError> {
    all_sounds(core)
        .find(|(_, s)| s.id == id)
        .map(|(t, s)| sound_json(t, s))
        .ok_or_else(|| ApiError::not_found(format!("no sound has the id {id}")))
}

/// Names compare case-insensitively, ignoring surrounding spaces.
fn fold(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The one sound called `name`: 404 (with similar names) when none is, 409 (with every match,
/// so the caller can pick an id) when several are.
fn find_by_name(core: &Core, name: &str) -> Result<u64, ApiError> {
    let wanted = fold(name);
    let exact: Vec<(&str, &Sound)> = all_sounds(core)
        .filter(|(_, s)| fold(&s.name) == wanted)
        .collect();
    match exact.as_slice() {
        [(_, s)] => Ok(s.id),
        [] => {
            let similar: Vec<Value> = all_sounds(core)
                .filter(|(_, s)| fold(&s.name).contains(&wanted))
                .take(10)
                .map(|(t, s)| sound_json(t, s))
                .collect();
            Err(
                ApiError::not_found(format!("no sound is called {:?}", name.trim()))
                    .with("similar", Value::Array(similar)),
            )
        }
        many => {
            let matches: Vec<Value> = many.iter().map(|(t, s)| sound_json(t, s)).collect();
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "ambiguous",
                format!(
                    "{} sounds are called {:?}; play one by id",
                    many.len(),
                    name.trim()
                ),
            )
            .with("matches", Value::Array(matches)))
        }
    }
}

fn play(core: &mut Core, id: u64) -> Reply {
    let sound = known(core, id)?;
    let (status, state) = match core.play(id) {
        PlayOutcome::Playing => (StatusCode::OK, "playing"),
        PlayOutcome::Loading => (StatusCode::ACCEPTED, "loading"),
        PlayOutcome::Unknown => {
            return Err(ApiError::not_found(format!("no sound has the id {id}")));
        }
        PlayOutcome::NotConnected => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_connected",
                "Voxboard is not connected to Discord (no bot token yet: see Settings)",
            ));
        }
        PlayOutcome::Failed(reason) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot_play",
                format!("the sound cannot be played: {reason}"),
            ));
        }
    };
    let mut body = sound;
    body["state"] = json!(state);
    Ok(Answer { status, body })
}

/// Progress with three decimals (an f32 printed as f64 shows noise like 0.41999998).
fn rounded(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

fn status(core: &Core) -> Value {
    let s = &core.status;
    let guild_name = |id: u64| s.guilds.iter().find(|g| g.id == id).map(|g| g.name.clone());
    // Discord ids pass 2^53, past what JavaScript numbers hold exactly: they go as strings,
    // as Discord's own API sends them. Board sound ids are small and stay numbers.
    let connections: Vec<Value> = s
        .connections
        .iter()
        .map(|c| {
            json!({
                "guild_id": c.guild_id.to_string(),
                "guild": guild_name(c.guild_id),
                "channel_id": c.channel_id.to_string(),
                "phase": c.phase.name(),
                "reason": c.reason,
                "speaking": c.speaking,
                "ping_ms": c.heartbeat_rtt.map(|d| rounded(d.as_secs_f32() * 1000.0)),
                "e2ee": c.dave.can_encrypt,
            })
        })
        .collect();
    let playing: Vec<Value> = s
        .playing
        .iter()
        .map(|p| {
            json!({
                "playback": p.id,
                "sound_id": p.sound,
                "name": p.sound.and_then(|id| core.board.sound(id)).map(|x| x.name.clone()),
                "progress": rounded(p.progress),
            })
        })
        .collect();
    let engine = if core.engine_running() {
        "running"
    } else {
        "stopped"
    };
    json!({
        "engine": engine,
        "gateway": {
            "ready": s.gateway_ready,
            "error": s.gateway_error,
        },
        "connections": connections,
        "playing": playing,
        "push_to_talk": s.push_to_talk,
        "master_volume": rounded(core.board.settings.master_volume),
    })
}
