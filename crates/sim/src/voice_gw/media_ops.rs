//! The voice gateway ops of an identified session: Select Protocol (which starts the media
//! session and sends Session Description), Speaking, and heartbeats with `seq_ack`.

use super::*;

impl Conn {
    pub(super) fn select_protocol(&mut self, d: &Value) {
        let shared = self.shared.clone();
        let Some(vid) = self.session else { return };
        let data = d.get("data");
        let mode = data
            .and_then(|x| x.get("mode"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let address = data.and_then(|x| x.get("address")).and_then(Value::as_str);
        let port = data
            .and_then(|x| x.get("port"))
            .and_then(Value::as_u64)
            .filter(|p| *p <= u64::from(u16::MAX));
        let mut st = shared.lock();
        let g = self.guild_id.unwrap_or(0);
        st.event(SimEvent::SelectProtocol {
            guild_id: g,
            mode: mode.clone(),
        });
        let Some(v) = st.voice.get(&vid) else { return };
        let (discovered, already) = (v.discovered, v.mode.is_some());
        if already {
            return st.violation(
                Some(g),
                "voice.select_twice",
                "Select Protocol after the session was described; ignored",
            );
        }
        drop(st);
        if d.get("protocol").and_then(Value::as_str) != Some("udp") {
            return self.fail(
                4012,
                "voice.select_protocol",
                format!("protocol {:?} is not \"udp\"", d.get("protocol")),
            );
        }
        if !shared.config.transport_modes.contains(&mode) {
            return self.fail(
                4016,
                "voice.select_mode",
                format!("mode {mode:?} was not offered"),
            );
        }
        let (Some(address), Some(port)) = (address, port) else {
            return self.fail(
                4020,
                "voice.select_payload",
                format!("data.address (string) and data.port (integer) are required: {d}"),
            );
        };
        let key: [u8; 32] = rand::random();
        let cipher = match TransportCipher::new(&mode, &key) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                return self.fail(
                    4016,
                    "voice.select_mode",
                    format!("the simulator cannot decrypt {mode:?}: {e}"),
                );
            }
        };
        let mut st = shared.lock();
        match discovered {
            Some(a) if a.ip().to_string() == address && a.port() as u64 == port => {}
            Some(a) => st.violation(
                Some(g),
                "voice.select_address",
                format!("reported {address}:{port}, IP discovery said {a}"),
            ),
            None => st.violation(
                Some(g),
                "voice.select_address",
                "Select Protocol before any IP discovery for this SSRC",
            ),
        }
        let Some(v) = st.voice.get_mut(&vid) else {
            return;
        };
        v.mode = Some(mode.clone());
        v.cipher = Some(cipher);
        let (channel, max_dave) = (v.grant.channel_id, v.max_dave);
        // Version 0 means plain Opus inside the transport AEAD.
        let version = dave::version_for(&st, &shared.config, g, channel, max_dave);
        if let Some(v) = st.voice.get_mut(&vid) {
            v.dave_version = Some(version);
        }
        st.secret(json!(key.to_vec()).to_string());
        let desc = json!({"mode": mode, "secret_key": key.to_vec(), "dave_protocol_version": version,
                          "audio_codec": "opus", "video_codec": null, "media_session_id": random_hex()});
        st.voice_send(vid, 4, desc);
        st.event(SimEvent::SessionDescription { guild_id: g, mode });
        let bot = shared.config.bot_user_id;
        dave::join_socket(&mut st, &shared.config, g, channel, bot, vid, max_dave);
    }

    pub(super) fn speaking(&mut self, d: &Value) {
        let Some(vid) = self.session else { return };
        let g = self.guild_id.unwrap_or(0);
        let mut st = self.shared.lock();
        let Some(expected) = st.voice.get(&vid).map(|v| v.ssrc) else {
            return;
        };
        let (Some(speaking), Some(ssrc)) = (
            d.get("speaking")
                .and_then(Value::as_u64)
                .and_then(|s| u32::try_from(s).ok()),
            d.get("ssrc").and_then(Value::as_u64),
        ) else {
            return st.violation(
                Some(g),
                "voice.speaking_payload",
                format!("Speaking needs integer speaking and ssrc: {d}"),
            );
        };
        st.event(SimEvent::Speaking {
            guild_id: g,
            ssrc: ssrc as u32,
            speaking,
        });
        if ssrc != u64::from(expected) {
            return st.violation(
                Some(g),
                "voice.speaking_ssrc",
                format!("Speaking ssrc {ssrc}, Ready gave {expected}; ignored"),
            );
        }
        if let Some(v) = st.voice.get_mut(&vid) {
            v.speaking = Some(speaking);
            v.speaking_at = Some(Instant::now());
            // Only a speaking 0 that ends audio is a stop to judge; one that merely registers
            // the SSRC (discord.py's style) says nothing about frames that follow it.
            v.rtp.speaking_off_at = (speaking == 0 && v.rtp.in_audio).then(Instant::now);
        }
    }

    pub(super) fn heartbeat(&mut self, d: &Value) {
        let g = self.guild_id;
        let mut st = self.shared.lock();
        let Some(obj) = d.as_object() else {
            return st.violation(
                g,
                "voice.heartbeat_v8",
                format!("v8 heartbeat must be {{t, seq_ack}}, got {d}; not acknowledged"),
            );
        };
        let t = obj.get("t").cloned().unwrap_or(Value::Null);
        if t.as_u64().is_none_or(|n| n >= 1 << 53) {
            return st.violation(g, "voice.heartbeat_nonce", format!("heartbeat t must be an integer JSON number below 2^53, got {t}; not acknowledged"));
        }
        let seq_ack = match obj.get("seq_ack") {
            None | Some(Value::Null) => None,
            Some(s) => match s.as_i64() {
                Some(n) => Some(n),
                None => {
                    return st.violation(
                        g,
                        "voice.heartbeat_seq_ack",
                        format!("seq_ack {s} is not an integer"),
                    );
                }
            },
        };
        self.hb_deadline = ws::heartbeat_deadline(self.shared.config.voice_heartbeat_interval);
        if let Some(vid) = self.session {
            let sent = st.voice.get(&vid).map_or(0, |v| v.seq as i64);
            if seq_ack.is_some_and(|n| n > sent) {
                st.violation(
                    g,
                    "voice.heartbeat_seq_ack",
                    format!("seq_ack {seq_ack:?} acknowledges more than the {sent} messages sent"),
                );
            }
            st.event(SimEvent::VoiceHeartbeat {
                guild_id: g.unwrap_or(0),
                seq_ack,
            });
        }
        drop(st);
        self.send_raw(json!({"op": 6, "d": {"t": t}}));
    }
}
