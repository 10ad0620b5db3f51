//! Voice gateway v8 payloads (docs/protocol.md §3).

use serde_json::{Value, json};

use crate::discord::gateway::payloads::snowflake;
use crate::discord::ws::Token;

pub const OP_IDENTIFY: u8 = 0;
pub const OP_SELECT_PROTOCOL: u8 = 1;
pub const OP_READY: u8 = 2;
pub const OP_HEARTBEAT: u8 = 3;
pub const OP_SESSION_DESCRIPTION: u8 = 4;
pub const OP_SPEAKING: u8 = 5;
pub const OP_HEARTBEAT_ACK: u8 = 6;
pub const OP_RESUME: u8 = 7;
pub const OP_HELLO: u8 = 8;
pub const OP_RESUMED: u8 = 9;
pub const OP_CLIENTS_CONNECT: u8 = 11;
pub const OP_CLIENT_DISCONNECT: u8 = 13;

/// Speaking flags (op 5).
pub mod speaking {
    pub const MICROPHONE: u32 = 1 << 0;
    pub const SOUNDSHARE: u32 = 1 << 1;
    pub const PRIORITY: u32 = 1 << 2;
}

/// Who we are to the voice server: everything Identify and Resume need.
#[derive(Clone)]
pub struct VoiceCredentials {
    pub guild_id: u64,
    pub user_id: u64,
    pub session_id: String,
    pub token: Token,
}

impl std::fmt::Debug for VoiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceCredentials")
            .field("guild_id", &self.guild_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

pub fn identify(c: &VoiceCredentials, max_dave_protocol_version: u16) -> String {
    json!({"op": OP_IDENTIFY, "d": {
        "server_id": c.guild_id.to_string(),
        "user_id": c.user_id.to_string(),
        "session_id": c.session_id,
        "token": c.token.expose(),
        "max_dave_protocol_version": max_dave_protocol_version,
    }})
    .to_string()
}

pub fn resume(c: &VoiceCredentials, seq_ack: i64) -> String {
    json!({"op": OP_RESUME, "d": {
        "server_id": c.guild_id.to_string(),
        "session_id": c.session_id,
        "token": c.token.expose(),
        "seq_ack": seq_ack,
    }})
    .to_string()
}

/// v8 heartbeat: the nonce is a JSON number (below 2^53), plus the last seq seen.
pub fn heartbeat(nonce: u64, seq_ack: i64) -> String {
    json!({"op": OP_HEARTBEAT, "d": {"t": nonce, "seq_ack": seq_ack}}).to_string()
}

pub fn select_protocol(address: &str, port: u16, mode: &str) -> String {
    json!({"op": OP_SELECT_PROTOCOL, "d": {
        "protocol": "udp",
        "data": {"address": address, "port": port, "mode": mode},
    }})
    .to_string()
}

pub fn speaking(flags: u32, ssrc: u32) -> String {
    json!({"op": OP_SPEAKING, "d": {"speaking": flags, "delay": 0, "ssrc": ssrc}}).to_string()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub ssrc: u32,
    pub ip: String,
    pub port: u16,
    pub modes: Vec<String>,
}

pub fn parse_ready(d: &Value) -> Option<Ready> {
    Some(Ready {
        ssrc: u32::try_from(d.get("ssrc")?.as_u64()?).ok()?,
        ip: d.get("ip")?.as_str()?.to_owned(),
        port: u16::try_from(d.get("port")?.as_u64()?).ok()?,
        modes: d
            .get("modes")?
            .as_array()?
            .iter()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect(),
    })
}

#[derive(Clone, PartialEq)]
pub struct SessionDescription {
    pub mode: String,
    pub secret_key: Vec<u8>,
    pub dave_protocol_version: u16,
}

impl std::fmt::Debug for SessionDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDescription")
            .field("mode", &self.mode)
            .field("dave_protocol_version", &self.dave_protocol_version)
            .finish_non_exhaustive()
    }
}

pub fn parse_session_description(d: &Value) -> Option<SessionDescription> {
    let key = d
        .get("secret_key")?
        .as_array()?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect::<Option<Vec<u8>>>()?;
    Some(SessionDescription {
        mode: d.get("mode")?.as_str()?.to_owned(),
        secret_key: key,
        dave_protocol_version: d
            .get("dave_protocol_version")
            .and_then(Value::as_u64)
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0),
    })
}

pub fn parse_user_ids(d: &Value) -> Vec<u64> {
    d.get("user_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(snowflake).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_nonce_is_a_number_and_carries_seq_ack() {
        let v: Value = serde_json::from_str(&heartbeat(1_501_184_119_561, 10)).unwrap();
        assert!(v["d"]["t"].is_u64());
        assert_eq!(v["d"]["seq_ack"], 10);
    }

    #[test]
    fn session_description_key_is_an_array_of_bytes() {
        let d = json!({"mode":"aead_aes256_gcm_rtpsize","secret_key":[1,2,255],"dave_protocol_version":1});
        let sd = parse_session_description(&d).unwrap();
        assert_eq!(sd.secret_key, vec![1, 2, 255]);
        assert_eq!(sd.dave_protocol_version, 1);
        assert!(parse_session_description(&json!({"mode":"x","secret_key":[256]})).is_none());
        assert!(!format!("{sd:?}").contains("255"), "key must not print");
    }

    #[test]
    fn ready_ignores_the_bogus_heartbeat_interval_and_extra_fields() {
        let d = json!({"ssrc":1,"ip":"127.0.0.1","port":1234,"modes":["a","b"],"heartbeat_interval":1,"experiments":[]});
        assert_eq!(parse_ready(&d).unwrap().modes, vec!["a", "b"]);
    }
}
