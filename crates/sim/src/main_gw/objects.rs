//! The JSON objects the main gateway sends, as Discord shapes them: a guild for GUILD_CREATE,
//! a channel for CHANNEL_CREATE/UPDATE/DELETE, a voice state.

use serde_json::{Value, json};

pub fn guild_create(g: &crate::config::SimGuild) -> Value {
    let channels: Vec<Value> = g.channels.iter().map(|c| channel_json(g.id, c)).collect();
    json!({"id": g.id.to_string(), "name": g.name, "unavailable": false, "member_count": 1,
           "channels": channels, "voice_states": [], "members": [], "stage_instances": [],
           "soundboard_sounds": []})
}

/// A channel object as Discord sends it in GUILD_CREATE and CHANNEL_CREATE/UPDATE/DELETE.
pub fn channel_json(guild_id: u64, c: &crate::config::SimChannel) -> Value {
    let mut v = json!({"id": c.id.to_string(), "name": c.name, "type": c.kind.wire_type(),
                       "guild_id": guild_id.to_string(), "parent_id": null, "position": 0});
    if c.kind.is_voice() {
        v["bitrate"] = json!(c.bitrate);
        v["user_limit"] = json!(c.user_limit);
        v["rtc_region"] = Value::Null;
    }
    v
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn voice_state(
    guild_id: u64,
    channel_id: Option<u64>,
    uid: &str,
    session_id: &str,
    mute: bool,
    deaf: bool,
    suppress: bool,
    request_to_speak: Option<&str>,
) -> Value {
    json!({"guild_id": guild_id.to_string(), "channel_id": channel_id.map(|c| c.to_string()),
           "user_id": uid, "session_id": session_id, "deaf": false, "mute": false,
           "self_deaf": deaf, "self_mute": mute, "self_video": false, "suppress": suppress,
           "request_to_speak_timestamp": request_to_speak})
}
