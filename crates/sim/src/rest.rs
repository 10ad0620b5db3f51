//! Discord's REST API, the one route a voice client needs: `PATCH
//! /api/v10/guilds/{guild}/voice-states/@me`, with which a bot in a stage channel asks to speak
//! (docs/protocol.md §1.10). Plain HTTP on 127.0.0.1; the checks are Discord's documented ones:
//!
//! - `Authorization: Bot TOKEN` (else 401), a JSON body (else 400 50035 / 50109);
//! - the bot must be in a voice channel of the guild (else 404 10065 Unknown Voice State), and
//!   `channel_id` must be that channel (else 400 50035) and a stage (else 400 50024);
//! - `suppress: false` needs Mute Members, `request_to_speak_timestamp` Request to Speak (else
//!   403 50013); suppressing oneself and clearing one's request are always allowed;
//! - success is `204 No Content` and a VOICE_STATE_UPDATE to every session of the bot.
//!
//! A request without a `DiscordBot (url, version)` User-Agent is served but recorded as a
//! violation (`rest.user_agent`): Discord asks for one and may block clients without it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{Value, json};

use super::config::ChannelKind;
use super::events::SimEvent;
use super::state::{Shared, snowflake};

pub async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let app = Router::new()
        .route(
            "/api/v10/guilds/{guild_id}/voice-states/@me",
            patch(modify_own_voice_state),
        )
        .route("/api/v10/gateway/bot", get(gateway_bot))
        .fallback(|| async { error(StatusCode::NOT_FOUND, 0, "404: Not Found") })
        .with_state(shared);
    let _ = axum::serve(listener, app).await;
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"code": code, "message": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /gateway/bot`: the gateway URL and the bot's session start limit (a day of 24 h from
/// the simulator's start; Identifies so far count against `SimConfig::session_start_limit`).
async fn gateway_bot(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap) -> Response {
    let expected = format!("Bot {}", shared.config.bot_token);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    let total = shared.config.session_start_limit;
    let used = shared.lock().identifies;
    let day_ms: u128 = 86_400_000;
    let reset_after = day_ms.saturating_sub(shared.started.elapsed().as_millis() % day_ms);
    let body = json!({
        "url": shared.gateway_url(),
        "shards": 1,
        "session_start_limit": {
            "total": total,
            "remaining": total.saturating_sub(used),
            "reset_after": reset_after as u64,
            "max_concurrency": 1,
        },
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn modify_own_voice_state(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(guild_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let expected = format!("Bot {}", shared.config.bot_token);
    if header(header::AUTHORIZATION) != Some(expected.as_str()) {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    let Ok(guild_id) = guild_id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    };
    let mut st = shared.lock();
    if !header(header::USER_AGENT).is_some_and(|ua| ua.starts_with("DiscordBot (")) {
        st.violation(
            Some(guild_id),
            "rest.user_agent",
            format!(
                "User-Agent {:?} is not `DiscordBot (url, version)`",
                header(header::USER_AGENT)
            ),
        );
    }
    let is_json = header(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.split(';').next() == Some("application/json"));
    let parsed = serde_json::from_slice::<Value>(&body);
    let (true, Ok(Value::Object(fields))) = (is_json, parsed) else {
        return error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        );
    };
    let Some(guild) = st.guild_now(guild_id).cloned() else {
        return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
    };
    let Some(grant) = st.guild(guild_id).grant.clone() else {
        return error(StatusCode::NOT_FOUND, 10065, "Unknown Voice State");
    };
    let channel = fields.get("channel_id").and_then(snowflake);
    if channel != Some(grant.channel_id) {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    let is_stage = guild
        .channels
        .iter()
        .any(|c| c.id == grant.channel_id && c.kind == ChannelKind::Stage);
    if !is_stage {
        return error(
            StatusCode::BAD_REQUEST,
            50024,
            "Cannot execute action on this channel type",
        );
    }
    let suppress = match fields.get("suppress") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"),
    };
    let request = match fields.get("request_to_speak_timestamp") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(t)) if valid_timestamp(t) => Some(Some(t.clone())),
        Some(_) => return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"),
    };
    let perms = guild.bot_permissions;
    let wants_to_speak = suppress == Some(false);
    let raises_hand = matches!(request, Some(Some(_)));
    let allowed =
        (perms.mute_members || !wants_to_speak) && (perms.request_to_speak || !raises_hand);
    st.event(SimEvent::SpeakRequest {
        guild_id,
        suppress,
        request_to_speak: matches!(request, Some(Some(_))),
        allowed,
    });
    if !allowed {
        return error(StatusCode::FORBIDDEN, 50013, "Missing Permissions");
    }
    let voice = st.guild(guild_id);
    if let Some(s) = suppress {
        voice.suppressed = s;
    }
    if let Some(r) = request {
        voice.request_to_speak = r;
    }
    super::main_gw::dispatch_bot_voice_state(&mut st, &shared, guild_id);
    StatusCode::NO_CONTENT.into_response()
}

/// ISO 8601 as Discord takes it (`2026-12-02T17:30:00.000Z`, an offset instead of `Z` too).
fn valid_timestamp(t: &str) -> bool {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok()
}
