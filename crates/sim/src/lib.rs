//! Discord on loopback: main gateway v10, two voice gateway v8 servers ("region A" and
//! "region B"), each with its UDP media server. Strict: where Discord would reject or ignore
//! something, the simulator does too, and records a [`Violation`] with the reason.
//!
//! This is an independent implementation of the protocol (described in docs/protocol.md); it
//! never uses `voxboard_voice::discord` or `voxboard_voice::engine`, which are what it tests.
//! It runs its own tokio runtime on its own thread, so sync code (tests, the app) can drive it.
//!
//! Violation rules (`Violation::rule`), with the close code when the socket is closed for it:
//!
//! | rule | breach |
//! |---|---|
//! | `main.version` / `main.encoding` / `main.compress` (4012), `main.query` | URL is not `?v=10&encoding=json` |
//! | `main.decode` / `main.payload_size` (4002) | bad JSON, binary frame, no integer op, > 4096 bytes |
//! | `main.not_authenticated` (4003), `main.identify_twice` / `main.resume_authed` (4005) | order of Identify/Resume |
//! | `main.auth` (4004), `main.intents` (4013 missing GUILDS/GUILD_VOICE_STATES, 4014 privileged) | Identify/Resume checks |
//! | `main.identify_properties` | Identify without `properties` |
//! | `main.session_limit` (4004) | Identify past `SimConfig::session_start_limit` (Discord resets the token); one within 5 s of the last gets op 9 (`SimEvent::IdentifyRateLimited`) |
//! | `main.resume_seq` (4007), `main.rate_limit` (4008), `main.heartbeat_missed` (4009), `main.unknown_op` (4001) | |
//! | `main.op4_payload` (4001), `main.op4_unknown_guild`, `main.op4_not_voice` (ignored, nothing sent back) | op 4 |
//! | `voice.version` (4012), `voice.decode` (4002), `voice.not_authenticated` (4003), `voice.auth` (4004) | voice socket and Identify |
//! | `voice.identify_twice` / `voice.resume_authed` (4005), `voice.unknown_op` (4001) | |
//! | `voice.resume_invalid` / `voice.resume_seq_ack` (4006) | Resume of a session never issued, or outside the buffer (one the server ended is refused with 4006 too, without a violation) |
//! | `voice.select_protocol` (4012), `voice.select_mode` (4016), `voice.select_payload` (4020), `voice.select_twice` | Select Protocol |
//! | `voice.select_address` | Select Protocol address/port differ from what IP discovery answered |
//! | `voice.speaking_payload`, `voice.speaking_ssrc` | op 5 (ignored) |
//! | `voice.heartbeat_v8`, `voice.heartbeat_nonce`, `voice.heartbeat_seq_ack` (not acknowledged), `voice.heartbeat_missed` (4009) | heartbeats |
//! | `udp.discovery`, `udp.discovery_ssrc` | IP discovery (no reply) |
//! | `rtp.parse`, `rtp.rtcp`, `rtp.payload_type`, `rtp.unknown_ssrc` | not RTP for a live session |
//! | `rtp.before_speaking`, `rtp.before_session_description`, `rtp.audio_while_not_speaking` | speaking state |
//! | `rtp.decrypt`, `rtp.nonce_reuse`, `rtp.seq`, `rtp.timestamp`, `opus.decode` | per packet |
//! | `rtp.silence_tail` | audio stopped (100 ms gap or speaking 0) without five F8 FF FE frames |
//! | `voice.dave_required` (4017) | Identify with `max_dave_protocol_version` < 1 in a voice channel while DAVE is required |
//! | `dave.key_package` | op 26 not a valid KeyPackage for the user (signature, suite 2, basic BE64 id, lifetime); ignored |
//! | `dave.commit` | op 28 unparsable, wrong group/epoch ahead, not from a member, unknown refs, inline proposals, Welcome mismatch; dropped |
//! | `dave.payload` | op 23/31 without a u16 `transition_id` |
//! | `dave.plaintext` | non-silence audio without the DAVE marker after the call's first transition; not heard |
//! | `dave.decrypt` | a DAVE frame no listener can decrypt, outside the 10 s after a transition; not heard |
//!
//! DAVE (docs/protocol.md §6, §8.2) lives in `dave/`: each call has an external sender and
//! virtual listeners, real davey clients fed through the same code paths as socket clients.

mod config;
mod dave;
mod events;
mod faults;
mod heard;
mod main_gw;
mod rest;
mod rtp;
mod state;
mod udp;
mod voice_gw;
mod ws;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::oneshot;

pub use config::{
    BotPermissions, ChannelKind, DaveMode, SelfSignedCert, SimChannel, SimConfig, SimGuild,
    demo_config,
};
pub use dave::ready_pair;
pub use events::{SimEvent, Violation};
pub use heard::{Heard, HeardFrame};

use faults::MainFault;
use state::Shared;

/// A running simulator. Dropping it shuts everything down (thread joined, sockets closed).
pub struct Simulator {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Binds every socket on 127.0.0.1 (port 0) and starts serving on a background thread.
    pub fn start(config: SimConfig) -> anyhow::Result<Simulator> {
        let bind_tcp = || -> anyhow::Result<std::net::TcpListener> {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind tcp")?;
            l.set_nonblocking(true)?;
            Ok(l)
        };
        let bind_udp = || -> anyhow::Result<std::net::UdpSocket> {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").context("bind udp")?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        let main = bind_tcp()?;
        let voice = [bind_tcp()?, bind_tcp()?];
        let udp = [bind_udp()?, bind_udp()?];
        let rest = bind_tcp()?;
        let shared = Arc::new(Shared::new(
            config,
            main.local_addr()?.port(),
            [voice[0].local_addr()?.port(), voice[1].local_addr()?.port()],
            [udp[0].local_addr()?.port(), udp[1].local_addr()?.port()],
            rest.local_addr()?.port(),
        ));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("voxboard-sim")
            .enable_all()
            .build()
            .context("sim runtime")?;
        let handle = rt.handle().clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("voxboard-sim".into())
            .spawn(move || {
                rt.block_on(async move {
                    let started = (|| -> anyhow::Result<()> {
                        tokio::spawn(main_gw::serve(
                            sh.clone(),
                            tokio::net::TcpListener::from_std(main)?,
                        ));
                        for (i, (v, u)) in voice.into_iter().zip(udp).enumerate() {
                            tokio::spawn(voice_gw::serve(
                                sh.clone(),
                                i,
                                tokio::net::TcpListener::from_std(v)?,
                            ));
                            tokio::spawn(udp::serve(
                                sh.clone(),
                                i,
                                tokio::net::UdpSocket::from_std(u)?,
                            ));
                        }
                        tokio::spawn(rest::serve(
                            sh.clone(),
                            tokio::net::TcpListener::from_std(rest)?,
                        ));
                        tokio::spawn(udp::silence_watch(sh.clone()));
                        tokio::spawn(dave::tick(sh.clone()));
                        Ok(())
                    })();
                    let ok = started.is_ok();
                    let _ = ready_tx.send(started);
                    if ok {
                        let _ = stop_rx.await;
                    }
                });
                // Dropping the runtime cancels every task, which closes every socket.
                rt.shutdown_timeout(Duration::from_secs(2));
            })?;
        ready_rx.recv().context("sim thread died")??;
        tracing::info!(target: "voxboard_sim", url = %shared.gateway_url(), "simulator started");
        Ok(Simulator {
            shared,
            rt: handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// "ws://127.0.0.1:PORT" of the main gateway ("wss://…" with [`SimConfig::serve_tls`]).
    pub fn gateway_url(&self) -> String {
        self.shared.gateway_url()
    }

    /// "http://127.0.0.1:PORT/api/v10": the REST API's base, as `https://discord.com/api/v10`.
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v10", self.shared.rest_port)
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// What a listener in the guild's voice channel heard from the bot (all SSRCs, arrival order).
    pub fn heard(&self, guild_id: u64) -> Heard {
        let st = self.shared.lock();
        Heard {
            frames: st
                .heard
                .get(&guild_id)
                .map(|f| f.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// When the first audio (non-silence) frame heard in the guild at or after `since` arrived,
    /// without copying what was heard (benchmarks poll this between plays).
    pub fn first_audio_after(&self, guild_id: u64, since: Instant) -> Option<Instant> {
        let st = self.shared.lock();
        st.heard
            .get(&guild_id)?
            .iter()
            .rev()
            .take_while(|f| f.at >= since)
            .filter(|f| !f.silence)
            .last()
            .map(|f| f.at)
    }

    /// How many non-silence frames a listener in the guild heard since the simulator started: a
    /// counter, unlike `heard()`, which keeps only the last `heard_limit` frames (the soak counts
    /// with it for hours).
    pub fn heard_audio_frames(&self, guild_id: u64) -> u64 {
        let st = self.shared.lock();
        st.heard_audio.get(&guild_id).copied().unwrap_or(0)
    }

    /// Every protocol breach so far, with a reason.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().violations.clone()
    }

    /// Every credential the simulator handed out so far: main and voice session ids, voice
    /// tokens, transport keys (as the JSON array they were sent as). None may appear in a
    /// client's logs.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.lock().secrets.clone()
    }

    /// The protocol log, in order.
    pub fn events(&self) -> Vec<SimEvent> {
        self.shared.lock().events.clone()
    }

    /// Polls `events()` every few ms until `pred` holds or the timeout passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[SimEvent]) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            // A copy, so `pred` may itself call into the simulator without deadlocking.
            if pred(&self.events()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn fault(&self, what: String, f: impl FnOnce(&mut state::State)) {
        let mut st = self.shared.lock();
        st.event(SimEvent::FaultInjected { what });
        f(&mut st);
    }

    /// Closes the guild's voice websocket with `code`.
    pub fn close_voice(&self, guild_id: u64, code: u16) {
        self.fault(format!("close_voice guild={guild_id} code={code}"), |st| {
            faults::close_voice(st, guild_id, code)
        });
    }

    /// Drops the guild's voice TCP connection without a close frame (the session stays resumable).
    pub fn drop_voice(&self, guild_id: u64) {
        self.fault(format!("drop_voice guild={guild_id}"), |st| {
            faults::drop_voice(st, guild_id)
        });
    }

    /// VOICE_SERVER_UPDATE naming a voice server nobody answers on (connection refused); the
    /// guild's next op 4 gets its real server again.
    pub fn announce_unreachable_voice_server(&self, guild_id: u64) {
        // A port that was free a moment ago: bound, then released.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "127.0.0.1:9".into());
        self.fault(format!("unreachable_voice_server guild={guild_id}"), |st| {
            faults::announce_unreachable_server(st, guild_id, dead);
        });
    }

    /// A channel is created in a guild (CHANNEL_CREATE to every session).
    pub fn create_channel(&self, guild_id: u64, channel: SimChannel) {
        self.fault(
            format!("create_channel guild={guild_id} channel={}", channel.id),
            |st| {
                let d = main_gw::channel_json(guild_id, &channel);
                if let Some(g) = st.guilds_now.iter_mut().find(|g| g.id == guild_id) {
                    g.channels.push(channel);
                    st.dispatch_all("CHANNEL_CREATE", d);
                }
            },
        );
    }

    /// A channel is deleted (CHANNEL_DELETE). A bot in it is disconnected as Discord does: its
    /// voice socket closes with 4014 and its voice state goes to no channel.
    pub fn delete_channel(&self, guild_id: u64, channel_id: u64) {
        self.fault(
            format!("delete_channel guild={guild_id} channel={channel_id}"),
            |st| {
                let Some(g) = st.guilds_now.iter_mut().find(|g| g.id == guild_id) else {
                    return;
                };
                let Some(at) = g.channels.iter().position(|c| c.id == channel_id) else {
                    return;
                };
                let channel = g.channels.remove(at);
                st.dispatch_all("CHANNEL_DELETE", main_gw::channel_json(guild_id, &channel));
                let in_it = st.guild(guild_id).grant.as_ref();
                if in_it.is_some_and(|g| g.channel_id == channel_id) {
                    faults::kick(st, guild_id, self.shared.config.bot_user_id);
                }
            },
        );
    }

    /// The bot is invited to a new guild while running (GUILD_CREATE after READY).
    pub fn invite_to_guild(&self, guild: SimGuild) {
        self.fault(format!("invite_to_guild guild={}", guild.id), |st| {
            st.dispatch_all("GUILD_CREATE", main_gw::guild_create(&guild));
            st.guilds_now.push(guild);
        });
    }

    /// The bot is removed from a guild (GUILD_DELETE without `unavailable`); its voice
    /// connection there ends.
    pub fn remove_from_guild(&self, guild_id: u64) {
        self.fault(format!("remove_from_guild guild={guild_id}"), |st| {
            st.guilds_now.retain(|g| g.id != guild_id);
            if let Some(vid) = st.guild(guild_id).session {
                st.end_voice(vid, 4014, "removed from the guild");
            }
            st.guild(guild_id).grant = None;
            st.dispatch_all(
                "GUILD_DELETE",
                serde_json::json!({"id": guild_id.to_string()}),
            );
        });
    }

    /// The guild's voice server accepts the next `connections` voice websockets and then stays
    /// silent on them (no Hello, nothing), as a hung voice server does.
    pub fn silence_voice_server(&self, guild_id: u64, connections: u32) {
        self.fault(
            format!("silence_voice_server guild={guild_id} connections={connections}"),
            |st| {
                let server = st.guild(guild_id).server;
                st.silent_connections[server] = connections;
            },
        );
    }

    /// Region move: VOICE_SERVER_UPDATE with a new token and the other voice server's endpoint.
    /// The old voice socket, if the client has not closed it, is closed with 4022 a second later.
    pub fn move_voice_server(&self, guild_id: u64) {
        let shared = self.shared.clone();
        let mut old = None;
        self.fault(format!("move_voice_server guild={guild_id}"), |st| {
            old = faults::move_voice_server(st, &shared, guild_id);
        });
        if let Some(vid) = old {
            let shared = self.shared.clone();
            self.rt.spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                shared.lock().end_voice(vid, 4022, "voice server changed");
            });
        }
    }

    /// Voice server reallocation (docs/protocol.md §1.7, §9 pitfall 6): the voice connection
    /// drops and its session is gone, VOICE_SERVER_UPDATE with `endpoint: null` follows, then
    /// after `after` one with a new token and the (same) real endpoint.
    pub fn reallocate_voice_server(&self, guild_id: u64, after: Duration) {
        let shared = self.shared.clone();
        let mut had_grant = false;
        self.fault(format!("reallocate_voice_server guild={guild_id}"), |st| {
            had_grant = faults::lose_voice_server(st, &shared, guild_id).is_some();
        });
        if had_grant {
            self.rt.spawn(async move {
                tokio::time::sleep(after).await;
                let mut st = shared.lock();
                faults::server_update(&mut st, &shared, guild_id, true);
            });
        }
    }

    /// A stage moderator makes the bot a speaker (`true`) or moves it back to the audience: a
    /// VOICE_STATE_UPDATE with the new `suppress`. Nothing when the bot is in no channel.
    pub fn set_stage_speaker(&self, guild_id: u64, speaker: bool) {
        let shared = self.shared.clone();
        self.fault(format!("stage_speaker guild={guild_id} {speaker}"), |st| {
            let voice = st.guild(guild_id);
            voice.suppressed = !speaker;
            voice.suppressed_at = (!speaker).then(Instant::now);
            if speaker {
                voice.request_to_speak = None;
            }
            main_gw::dispatch_bot_voice_state(st, &shared, guild_id);
        });
    }

    /// Voice close 4014, then VOICE_STATE_UPDATE with channel_id null.
    pub fn kick(&self, guild_id: u64) {
        let uid = self.shared.config.bot_user_id;
        self.fault(format!("kick guild={guild_id}"), |st| {
            faults::kick(st, guild_id, uid)
        });
    }

    /// The bot's network blips long enough for Discord to drop it from the voice channel:
    /// both sockets cut, the voice session over, and a VOICE_STATE_UPDATE with no channel
    /// delivered on the main gateway's resume (no 4014 first, unlike [`Self::kick`]).
    pub fn network_blip(&self, guild_id: u64) {
        let uid = self.shared.config.bot_user_id;
        self.fault(format!("network_blip guild={guild_id}"), |st| {
            faults::network_blip(st, guild_id, uid)
        });
    }

    /// A virtual member (not the bot) joins a voice channel (`Some`) or leaves (`None`): the
    /// VOICE_STATE_UPDATE Discord sends every session on the main gateway when a person does.
    /// The member does not enter the voice call itself (no media, no DAVE).
    pub fn member_voice_state(&self, guild_id: u64, user_id: u64, channel_id: Option<u64>) {
        let what = format!("member_voice_state guild={guild_id} user={user_id} {channel_id:?}");
        self.fault(what, |st| {
            let uid = user_id.to_string();
            let session = format!("member-{user_id}");
            let vs = main_gw::voice_state(
                guild_id, channel_id, &uid, &session, false, false, false, None,
            );
            st.dispatch_all("VOICE_STATE_UPDATE", vs);
        });
    }

    /// Main gateway op 7 Reconnect.
    pub fn main_reconnect(&self) {
        self.fault("main_reconnect".into(), |st| {
            faults::inject(st, MainFault::Reconnect)
        });
    }

    /// Main gateway op 9 with `d: resumable`; when not resumable the session (and its voice) ends.
    pub fn main_invalidate(&self, resumable: bool) {
        self.fault(format!("main_invalidate resumable={resumable}"), |st| {
            faults::inject(st, MainFault::Invalidate(resumable))
        });
    }

    /// A main gateway outage of `length`: the connection drops, new ones are cut until it is
    /// over, and the session is gone by then, so its voice connections end with 4014 and the
    /// client must Identify again (voice servers keep running meanwhile).
    pub fn main_outage(&self, length: Duration) {
        self.fault(format!("main_outage {length:?}"), move |st| {
            faults::inject(st, MainFault::Outage(length))
        });
    }

    /// Drops the main gateway TCP connection without a close frame.
    pub fn drop_main(&self) {
        self.fault("drop_main".into(), |st| faults::inject(st, MainFault::Drop));
    }

    pub fn close_main(&self, code: u16) {
        self.fault(format!("close_main code={code}"), |st| {
            faults::inject(st, MainFault::Close(code))
        });
    }

    /// Drops every n-th RTP packet of the guild before processing (0 = none).
    pub fn set_udp_drop_every(&self, guild_id: u64, n: u32) {
        self.fault(format!("udp_drop_every guild={guild_id} n={n}"), |st| {
            let g = st.guild(guild_id);
            g.udp_drop_every = n;
            g.udp_drop_counter = 0;
        });
    }

    /// Delays the processing of each RTP packet of the guild.
    pub fn set_udp_delay(&self, guild_id: u64, d: Duration) {
        self.fault(format!("udp_delay guild={guild_id} delay={d:?}"), |st| {
            st.guild(guild_id).udp_delay = d
        });
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulator_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Simulator>();
    }

    #[test]
    fn starts_and_stops_cleanly_with_the_documented_defaults() {
        let sim = Simulator::start(SimConfig::default()).expect("start");
        assert!(sim.gateway_url().starts_with("ws://127.0.0.1:"));
        assert_eq!(sim.config().guilds[0].id, 100);
        assert_eq!(sim.config().guilds[0].channels[1].id, 1002);
        let port: u16 = sim
            .gateway_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        drop(sim);
        // Dropped: the listener is closed, so the port accepts no more connections.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        let demo = demo_config();
        assert_eq!(
            demo.guilds
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>(),
            ["Demo Guild A", "Demo Guild B"]
        );
    }
}
