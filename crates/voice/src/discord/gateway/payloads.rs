//! Main gateway (v10, JSON) payloads a voice bot sends and reads (docs/protocol.md §1).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::discord::ws::Token;

pub const OP_DISPATCH: u8 = 0;
pub const OP_HEARTBEAT: u8 = 1;
pub const OP_IDENTIFY: u8 = 2;
pub const OP_VOICE_STATE_UPDATE: u8 = 4;
pub const OP_RESUME: u8 = 6;
pub const OP_RECONNECT: u8 = 7;
pub const OP_INVALID_SESSION: u8 = 9;
pub const OP_HELLO: u8 = 10;
pub const OP_HEARTBEAT_ACK: u8 = 11;

/// GUILDS | GUILD_VOICE_STATES: channels and voice states, nothing privileged.
pub const INTENTS: u64 = (1 << 0) | (1 << 7);

/// The gateway closes the connection on any payload above this size (close 4002).
pub const MAX_PAYLOAD: usize = 4096;

/// Every gateway payload: `{op, d, s, t}`.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub op: u8,
    #[serde(default)]
    pub d: Value,
    #[serde(default)]
    pub s: Option<u64>,
    #[serde(default)]
    pub t: Option<String>,
}

pub fn identify(token: &Token) -> String {
    json!({"op": OP_IDENTIFY, "d": {
        "token": token.expose(),
        "intents": INTENTS,
        "properties": {"os": std::env::consts::OS, "browser": "voxboard", "device": "voxboard"},
    }})
    .to_string()
}

pub fn resume(token: &Token, session_id: &str, seq: Option<u64>) -> String {
    json!({"op": OP_RESUME, "d": {"token": token.expose(), "session_id": session_id, "seq": seq}})
        .to_string()
}

pub fn heartbeat(seq: Option<u64>) -> String {
    json!({"op": OP_HEARTBEAT, "d": seq}).to_string()
}

pub fn voice_state_update(
    guild_id: u64,
    channel_id: Option<u64>,
    self_mute: bool,
    self_deaf: bool,
) -> String {
    json!({"op": OP_VOICE_STATE_UPDATE, "d": {
        "guild_id": guild_id.to_string(),
        "channel_id": channel_id.map(|c| c.to_string()),
        "self_mute": self_mute,
        "self_deaf": self_deaf,
    }})
    .to_string()
}

/// Snowflakes travel as strings; accept numbers too, defensively.
pub fn snowflake(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub user_id: u64,
    pub session_id: String,
    pub resume_gateway_url: Option<String>,
    pub guild_ids: Vec<u64>,
}

pub fn parse_ready(d: &Value) -> Option<Ready> {
    Some(Ready {
        user_id: snowflake(d.get("user")?.get("id")?)?,
        session_id: d.get("session_id")?.as_str()?.to_owned(),
        resume_gateway_url: d
            .get("resume_gateway_url")
            .and_then(Value::as_str)
            .map(str::to_owned),
        guild_ids: d
            .get("guilds")
            .and_then(Value::as_array)
            .map(|gs| {
                gs.iter()
                    .filter_map(|g| g.get("id").and_then(snowflake))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Channel types a bot can join for voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Voice,
    Stage,
    Other(u64),
}

impl ChannelKind {
    fn from_type(t: u64) -> Self {
        match t {
            2 => ChannelKind::Voice,
            13 => ChannelKind::Stage,
            other => ChannelKind::Other(other),
        }
    }
    pub fn is_voice(self) -> bool {
        matches!(self, ChannelKind::Voice | ChannelKind::Stage)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: u64,
    pub name: String,
    pub kind: ChannelKind,
    pub bitrate: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Guild {
    pub id: u64,
    pub name: String,
    pub channels: Vec<Channel>,
    /// Who is in which voice channel as the guild arrives: (user id, channel id).
    pub voice_states: Vec<(u64, u64)>,
}

pub fn parse_guild_create(d: &Value) -> Option<Guild> {
    if d.get("unavailable").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let channels = d
        .get("channels")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(parse_channel).collect())
        .unwrap_or_default();
    // GUILD_CREATE's voice states carry no guild_id: the guild is the event's.
    let voice_states = d
        .get("voice_states")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| {
                    Some((
                        snowflake(v.get("user_id")?)?,
                        snowflake(v.get("channel_id")?)?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Guild {
        id: snowflake(d.get("id")?)?,
        name: d
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        channels,
        voice_states,
    })
}

/// A channel object (in GUILD_CREATE, or alone in CHANNEL_CREATE/UPDATE/DELETE).
pub fn parse_channel(c: &Value) -> Option<Channel> {
    Some(Channel {
        id: snowflake(c.get("id")?)?,
        name: c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        kind: ChannelKind::from_type(c.get("type")?.as_u64()?),
        bitrate: c
            .get("bitrate")
            .and_then(Value::as_u64)
            .and_then(|b| u32::try_from(b).ok()),
    })
}

/// CHANNEL_CREATE/UPDATE/DELETE: the guild and the channel (DMs have no guild and are skipped).
pub fn parse_guild_channel(d: &Value) -> Option<(u64, Channel)> {
    Some((snowflake(d.get("guild_id")?)?, parse_channel(d)?))
}

/// GUILD_DELETE: the guild, and whether it is only unavailable (an outage) rather than gone
/// (the bot was removed).
pub fn parse_guild_delete(d: &Value) -> Option<(u64, bool)> {
    let unavailable = d.get("unavailable").and_then(Value::as_bool) == Some(true);
    Some((snowflake(d.get("id")?)?, unavailable))
}

#[derive(Debug, Clone, PartialEq)]
pub struct VoiceState {
    pub guild_id: u64,
    pub user_id: u64,
    pub channel_id: Option<u64>,
    pub session_id: String,
    /// In a stage: an audience member, whose audio Discord does not forward.
    pub suppress: bool,
    /// In a stage: the hand is raised (`request_to_speak_timestamp` is set).
    pub hand_raised: bool,
}

pub fn parse_voice_state(d: &Value) -> Option<VoiceState> {
    Some(VoiceState {
        guild_id: snowflake(d.get("guild_id")?)?,
        user_id: snowflake(d.get("user_id")?)?,
        channel_id: d.get("channel_id").and_then(snowflake),
        session_id: d.get("session_id")?.as_str()?.to_owned(),
        suppress: d.get("suppress").and_then(Value::as_bool) == Some(true),
        hand_raised: d
            .get("request_to_speak_timestamp")
            .is_some_and(Value::is_string),
    })
}

#[derive(Clone, PartialEq)]
pub struct VoiceServer {
    pub guild_id: u64,
    pub token: Token,
    /// `None` while Discord reallocates the voice server: wait for the next update.
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for VoiceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceServer")
            .field("guild_id", &self.guild_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

pub fn parse_voice_server(d: &Value) -> Option<VoiceServer> {
    Some(VoiceServer {
        guild_id: snowflake(d.get("guild_id")?)?,
        token: Token::new(d.get("token")?.as_str()?),
        endpoint: d
            .get("endpoint")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_state_update_uses_string_snowflakes_and_null_to_leave() {
        let v: Value = serde_json::from_str(&voice_state_update(41, None, false, true)).unwrap();
        assert_eq!(v["op"], 4);
        assert_eq!(v["d"]["guild_id"], "41");
        assert!(v["d"]["channel_id"].is_null());
        assert_eq!(v["d"]["self_deaf"], true);
    }

    #[test]
    fn identify_asks_for_guilds_and_voice_states() {
        let v: Value = serde_json::from_str(&identify(&Token::new("t"))).unwrap();
        assert_eq!(v["d"]["intents"], 129);
    }

    #[test]
    fn parses_dispatches_defensively() {
        let vs = json!({"guild_id":"1","user_id":"2","channel_id":null,"session_id":"abc"});
        assert_eq!(parse_voice_state(&vs).unwrap().channel_id, None);
        let srv = json!({"guild_id":"1","token":"x","endpoint":null});
        assert_eq!(parse_voice_server(&srv).unwrap().endpoint, None);
        assert!(parse_voice_server(&json!({"guild_id": []})).is_none());
        let g = json!({"id":"5","name":"G","channels":[{"id":"6","type":2,"name":"v"},{"id":"7","type":0}]});
        let g = parse_guild_create(&g).unwrap();
        assert_eq!(g.channels.len(), 2);
        assert!(g.channels[0].kind.is_voice() && !g.channels[1].kind.is_voice());
    }
}
