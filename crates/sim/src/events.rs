//! The protocol log and the violations list.

/// A protocol breach by the client, with a short stable rule id and a human reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub guild_id: Option<u64>,
    /// Short stable id, e.g. "rtp.seq".
    pub rule: String,
    pub detail: String,
}

/// One entry of the simulator's protocol log, in the order things happened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    MainConnected {
        query: String,
    },
    MainIdentify {
        intents: u64,
    },
    MainResume {
        seq: u64,
    },
    MainResumed {
        replayed: usize,
    },
    MainHeartbeat {
        seq: Option<u64>,
    },
    MainClosed {
        code: Option<u16>,
    },
    /// A main connection cut during an outage (`Simulator::main_outage`).
    MainRefused,
    /// An Identify within 5 s of the previous one (`max_concurrency` 1): answered with op 9.
    IdentifyRateLimited,
    VoiceStateRequest {
        guild_id: u64,
        channel_id: Option<u64>,
        self_deaf: bool,
    },
    /// PATCH /guilds/{guild}/voice-states/@me (a stage speaker request): what it asked for and
    /// whether the bot's permissions allowed it (403 when not).
    SpeakRequest {
        guild_id: u64,
        suppress: Option<bool>,
        request_to_speak: bool,
        allowed: bool,
    },
    /// VOICE_STATE_UPDATE dispatched to the bot.
    VoiceStateUpdate {
        guild_id: u64,
        channel_id: Option<u64>,
    },
    /// VOICE_SERVER_UPDATE dispatched to the bot (endpoint "" when it was null).
    VoiceServerUpdate {
        guild_id: u64,
        endpoint: String,
    },
    VoiceConnected {
        server: usize,
        query: String,
    },
    VoiceIdentify {
        guild_id: u64,
        max_dave_protocol_version: Option<u64>,
    },
    VoiceReady {
        guild_id: u64,
        ssrc: u32,
    },
    VoiceResume {
        guild_id: u64,
        seq_ack: i64,
    },
    VoiceResumed {
        guild_id: u64,
        replayed: usize,
    },
    IpDiscovery {
        guild_id: u64,
        ssrc: u32,
    },
    SelectProtocol {
        guild_id: u64,
        mode: String,
    },
    SessionDescription {
        guild_id: u64,
        mode: String,
    },
    Speaking {
        guild_id: u64,
        ssrc: u32,
        speaking: u32,
    },
    VoiceHeartbeat {
        guild_id: u64,
        seq_ack: Option<i64>,
    },
    VoiceClosed {
        guild_id: u64,
        code: Option<u16>,
    },
    FaultInjected {
        what: String,
    },
    /// A valid op 26 key package was stored for this user (socket client or listener).
    KeyPackage {
        guild_id: u64,
        user_id: u64,
    },
    /// op 27 sent: `adds`/`removes` proposals appended, or `revoked` refs withdrawn.
    Proposals {
        guild_id: u64,
        epoch: u64,
        adds: Vec<u64>,
        removes: Vec<u64>,
        revoked: usize,
    },
    /// An op 28 commit was judged: accepted (it won the epoch) or dropped (late, stale or invalid).
    Commit {
        guild_id: u64,
        user_id: u64,
        accepted: bool,
    },
    /// op 30 sent to a user being added.
    WelcomeSent {
        guild_id: u64,
        user_id: u64,
        transition_id: u16,
    },
    /// op 23 received.
    TransitionReady {
        guild_id: u64,
        user_id: u64,
        transition_id: u16,
    },
    /// op 22 sent to the call (`epoch` is the group epoch the transition leads to; 0 after a
    /// downgrade).
    ExecuteTransition {
        guild_id: u64,
        transition_id: u16,
        epoch: u64,
    },
    /// op 21 sent (`transition_id` 0 for a sole-member reset).
    PrepareTransition {
        guild_id: u64,
        transition_id: u16,
        protocol_version: u16,
    },
    /// op 31 received.
    InvalidCommitWelcome {
        guild_id: u64,
        user_id: u64,
        transition_id: u16,
    },
    /// op 24 sent to a user.
    PrepareEpoch {
        guild_id: u64,
        user_id: u64,
        epoch: u64,
        protocol_version: u16,
    },
    /// A user joined or left the call (virtual listeners included).
    CallJoin {
        guild_id: u64,
        user_id: u64,
    },
    CallLeave {
        guild_id: u64,
        user_id: u64,
    },
}
