//! What the simulated Discord looks like: the bot, its guilds and channels, the offered modes.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The certificate of [`SimConfig::serve_self_signed_tls`]: DER for a rustls root store, PEM
/// for a file (`SSL_CERT_FILE`).
pub struct SelfSignedCert {
    pub der: CertificateDer<'static>,
    pub pem: String,
}

/// Discord channel types the simulator knows (the numbers are Discord's `type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// GUILD_TEXT (0).
    Text,
    /// GUILD_VOICE (2).
    Voice,
    /// GUILD_STAGE_VOICE (13).
    Stage,
}

impl ChannelKind {
    /// The channel `type` number on the wire.
    pub fn wire_type(self) -> u8 {
        match self {
            ChannelKind::Text => 0,
            ChannelKind::Voice => 2,
            ChannelKind::Stage => 13,
        }
    }

    /// Whether a bot can join it with op 4.
    pub fn is_voice(self) -> bool {
        matches!(self, ChannelKind::Voice | ChannelKind::Stage)
    }
}

/// Whether the simulated Discord requires DAVE (E2EE) in voice channels (docs/protocol.md §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DaveMode {
    /// Like Discord since 2026-03: a voice Identify without DAVE in a type-2 channel gets 4017.
    #[default]
    Required,
    /// The call's version is the lowest offered by its participants (0 if the bot offers 0).
    Optional,
    /// No DAVE: every call has `dave_protocol_version` 0.
    Off,
}

/// A channel of a simulated guild.
#[derive(Debug, Clone)]
pub struct SimChannel {
    pub id: u64,
    pub name: String,
    pub kind: ChannelKind,
    pub bitrate: u32,
    pub user_limit: u32,
}

/// A simulated guild.
#[derive(Debug, Clone)]
pub struct SimGuild {
    pub id: u64,
    pub name: String,
    pub channels: Vec<SimChannel>,
    /// A guild in an outage: READY lists it (as every guild, `unavailable: true`), but its
    /// GUILD_CREATE never comes and an op 4 for it goes unanswered.
    pub unavailable: bool,
    /// What the bot's roles allow in the guild's stage channels.
    pub bot_permissions: BotPermissions,
}

/// The bot's permissions that matter to a voice client (Connect and Speak are always given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotPermissions {
    /// MUTE_MEMBERS: needed to make itself a speaker in a stage (`suppress: false`).
    pub mute_members: bool,
    /// REQUEST_TO_SPEAK: needed to raise its hand in a stage (given to @everyone by default).
    pub request_to_speak: bool,
}

impl Default for BotPermissions {
    /// A bot invited as a stage moderator: it can make itself a speaker.
    fn default() -> Self {
        Self {
            mute_members: true,
            request_to_speak: true,
        }
    }
}

/// Everything the simulator is started with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one valid bot token.
    pub bot_token: String,
    pub bot_user_id: u64,
    pub guilds: Vec<SimGuild>,
    /// Offered in voice Ready, in this order.
    pub transport_modes: Vec<String>,
    /// Sent in main gateway op 10 Hello.
    pub main_heartbeat_interval: Duration,
    /// Sent in voice gateway op 8 Hello.
    pub voice_heartbeat_interval: Duration,
    /// How many frames `heard()` keeps per guild (oldest dropped first), so a long demo stays bounded.
    pub heard_limit: usize,
    /// DAVE policy for voice (type 2) channels; stage channels never use DAVE.
    pub dave: DaveMode,
    /// Virtual listeners a DAVE call starts with when the bot's voice session starts.
    pub dave_listeners: usize,
    /// When a virtual listener sends its commit after proposals reach it (None: never, so a
    /// socket client's commit wins; Some(ZERO): at once, so the listener wins the race).
    pub listener_commit_delay: Option<Duration>,
    /// Serve both gateways over TLS (`wss://`, as Discord does); see [`SimConfig::serve_tls`].
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What READY's `resume_gateway_url` says (None: the simulator's own gateway URL), for
    /// tests of a server that names somewhere else to resume at.
    pub resume_gateway_url: Option<String>,
    /// Identifies the bot may make in the (simulated) day, as `GET /gateway/bot` reports. Past
    /// it Discord resets the token: the Identify fails with 4004 (`main.session_limit`).
    pub session_start_limit: u32,
}

impl SimConfig {
    pub const TEST_TOKEN: &'static str = "sim.bot.token-not-secret";
    pub const DEFAULT_BOT_USER_ID: u64 = 1_000_000_000_000_001;

    /// `n` guilds, ids 100+i, each with a text channel (id 1000*(i+1)+1, "general") and a voice
    /// channel (id 1000*(i+1)+2, "Voice", bitrate 64000).
    pub fn with_guilds(n: usize) -> Self {
        let guilds = (0..n as u64)
            .map(|i| SimGuild {
                id: 100 + i,
                name: format!("Sim Guild {}", i + 1),
                unavailable: false,
                bot_permissions: BotPermissions::default(),
                channels: vec![
                    SimChannel {
                        id: 1000 * (i + 1) + 1,
                        name: "general".into(),
                        kind: ChannelKind::Text,
                        bitrate: 0,
                        user_limit: 0,
                    },
                    SimChannel {
                        id: 1000 * (i + 1) + 2,
                        name: "Voice".into(),
                        kind: ChannelKind::Voice,
                        bitrate: 64_000,
                        user_limit: 0,
                    },
                ],
            })
            .collect();
        SimConfig {
            bot_token: Self::TEST_TOKEN.into(),
            bot_user_id: Self::DEFAULT_BOT_USER_ID,
            guilds,
            transport_modes: vec![
                "aead_aes256_gcm_rtpsize".into(),
                "aead_xchacha20_poly1305_rtpsize".into(),
            ],
            main_heartbeat_interval: Duration::from_millis(41_250),
            voice_heartbeat_interval: Duration::from_millis(13_750),
            heard_limit: 6_000,
            dave: DaveMode::Required,
            dave_listeners: 1,
            listener_commit_delay: Some(Duration::from_millis(50)),
            tls: None,
            resume_gateway_url: None,
            session_start_limit: 1000,
        }
    }

    /// Serves the main and voice gateways over TLS with this certificate (for 127.0.0.1), so a
    /// client is tested on the `wss://` path real Discord uses. The client must trust it.
    pub fn serve_tls(
        &mut self,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), rustls::Error> {
        // The process-wide rustls provider; a client in the same process may have set it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(cert_chain, key)?;
        self.tls = Some(Arc::new(config));
        Ok(())
    }

    /// Serves both gateways over TLS with a certificate made now for 127.0.0.1 and signed by
    /// itself; returns that certificate for the client under test to trust.
    pub fn serve_self_signed_tls(&mut self) -> anyhow::Result<SelfSignedCert> {
        let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
        let der = issued.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der());
        self.serve_tls(vec![der.clone()], key.into())?;
        Ok(SelfSignedCert {
            der,
            pem: issued.cert.pem(),
        })
    }

    pub fn guild(&self, id: u64) -> Option<&SimGuild> {
        self.guilds.iter().find(|g| g.id == id)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::with_guilds(1)
    }
}

/// Two guilds for the app's demo mode.
pub fn demo_config() -> SimConfig {
    let mut c = SimConfig::with_guilds(2);
    c.guilds[0].name = "Demo Guild A".into();
    c.guilds[1].name = "Demo Guild B".into();
    c
}
