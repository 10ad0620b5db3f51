//! Discord's REST API, what the voice engine needs of it: a bot in a stage channel asks to
//! speak (docs/protocol.md §1.10). HTTPS with the same trusted roots as the gateways.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use url::Url;

use super::ws::{TlsTrust, Token, UrlError, install_crypto_provider, is_loopback_host};

/// Discord's production REST API.
pub const DISCORD_API: &str = "https://discord.com/api/v10";

/// Discord asks every client for `DiscordBot (url, version)`.
const USER_AGENT: &str = concat!(
    "DiscordBot (https://github.com/voxboard/voxboard, ",
    env!("CARGO_PKG_VERSION"),
    ")"
);
/// A stage request that takes longer than this is reported; the user can still be invited.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Checks a REST base URL: `https://` anywhere, `http://` only on loopback (the simulator).
pub fn check_rest_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw).map_err(|_| UrlError::Invalid(raw.to_owned()))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(url),
        "http" => Err(UrlError::InsecureRemote(raw.to_owned())),
        _ => Err(UrlError::Scheme(raw.to_owned())),
    }
}

/// Whether this REST base speaks for the gateway the engine uses: both Discord's own, or a REST
/// base set on purpose. With a custom gateway (the simulator, a proxy) and the default REST
/// base, asking Discord's REST API would send the token somewhere the user did not choose.
pub fn serves_gateway(rest: &Url, gateway: &Url) -> bool {
    let discord_rest = Url::parse(DISCORD_API).is_ok_and(|d| d.host() == rest.host());
    let discord_gateway =
        Url::parse(super::ws::DISCORD_GATEWAY).is_ok_and(|d| d.host() == gateway.host());
    discord_gateway || !discord_rest
}

/// Why a REST call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// Discord answered with an error: its HTTP status, JSON error code and message.
    #[error("Discord answered {status} ({code}: {message})")]
    Refused {
        status: u16,
        code: u64,
        message: String,
    },
    #[error("the REST API could not be reached: {0}")]
    Unreachable(String),
}

impl RestError {
    /// 403 50013: the bot's roles lack a permission.
    pub fn is_missing_permissions(&self) -> bool {
        matches!(self, RestError::Refused { status: 403, .. })
    }
}

/// A client for one bot. Cheap to clone; the HTTP client is built on first use, on the I/O
/// runtime (reading the system's certificate store is file I/O).
#[derive(Clone)]
pub struct RestClient {
    base: Url,
    token: Token,
    tls: TlsTrust,
    http: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl RestClient {
    pub fn new(base: Url, token: Token, tls: TlsTrust) -> Self {
        Self {
            base,
            token,
            tls,
            http: Arc::default(),
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn http(&self) -> Result<&reqwest::Client, RestError> {
        self.http
            .get_or_init(|| {
                install_crypto_provider();
                reqwest::Client::builder()
                    .tls_backend_preconfigured((*self.tls.client_config()).clone())
                    .user_agent(USER_AGENT)
                    .timeout(TIMEOUT)
                    // The token must never go to a proxy named by the environment.
                    .no_proxy()
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| RestError::Unreachable(e.clone()))
    }

    /// `PATCH /guilds/{guild}/voice-states/@me`: the bot's own voice state in a stage
    /// (`suppress`, `request_to_speak_timestamp`). Discord answers 204.
    pub async fn modify_own_voice_state(
        &self,
        guild_id: u64,
        body: Value,
    ) -> Result<(), RestError> {
        let url = self.route(&["guilds", &guild_id.to_string(), "voice-states", "@me"])?;
        let response = self
            .http()?
            .patch(url)
            .header("Authorization", format!("Bot {}", self.token.expose()))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            // reqwest's error names the URL, which holds nothing secret; never the headers.
            .map_err(|e| RestError::Unreachable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(refused(status, &error))
    }

    /// `GET /gateway/bot`: the bot's session start limit.
    pub async fn session_start_limit(&self) -> Result<SessionStartLimit, RestError> {
        let url = self.route(&["gateway", "bot"])?;
        let response = self
            .http()?
            .get(url)
            .header("Authorization", format!("Bot {}", self.token.expose()))
            .send()
            .await
            .map_err(|e| RestError::Unreachable(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        SessionStartLimit::from_gateway_bot(&body).ok_or_else(|| {
            RestError::Unreachable("GET /gateway/bot answered without a session start limit".into())
        })
    }

    /// The base URL with `segments` appended.
    fn route(&self, segments: &[&str]) -> Result<Url, RestError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| RestError::Unreachable("the REST base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Asks to speak in a stage: first to become a speaker (needs Mute Members), and when that
    /// is refused for want of the permission, to raise the bot's hand instead.
    pub async fn request_to_speak(&self, guild_id: u64, channel_id: u64) -> SpeakOutcome {
        let channel = channel_id.to_string();
        let speak = json!({"channel_id": channel, "suppress": false});
        match self.modify_own_voice_state(guild_id, speak).await {
            Ok(()) => SpeakOutcome::Unsuppressed,
            Err(e) if e.is_missing_permissions() => {
                let now = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let hand = json!({"channel_id": channel, "request_to_speak_timestamp": now});
                match self.modify_own_voice_state(guild_id, hand).await {
                    Ok(()) => SpeakOutcome::HandRaised,
                    Err(e) => SpeakOutcome::Failed(e),
                }
            }
            Err(e) => SpeakOutcome::Failed(e),
        }
    }
}

/// Discord's error answer: its status, JSON code and message (cut short).
fn refused(status: reqwest::StatusCode, error: &Value) -> RestError {
    RestError::Refused {
        status: status.as_u16(),
        code: error.get("code").and_then(Value::as_u64).unwrap_or(0),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .map(|m| m.chars().take(200).collect())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned()),
    }
}

/// `GET /gateway/bot`'s `session_start_limit`: how many new gateway sessions the bot may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStartLimit {
    pub total: u32,
    pub remaining: u32,
    pub reset_after: Duration,
    /// Identifies allowed per 5 s.
    pub max_concurrency: u32,
}

impl SessionStartLimit {
    /// From the route's JSON; `None` when a field is missing or out of range.
    pub fn from_gateway_bot(body: &Value) -> Option<Self> {
        let l = body.get("session_start_limit")?;
        let field = |name| l.get(name).and_then(Value::as_u64);
        Some(Self {
            total: u32::try_from(field("total")?).ok()?,
            remaining: u32::try_from(field("remaining")?).ok()?,
            // At most a day and a bit: a larger value is a broken answer, not a longer wait.
            reset_after: Duration::from_millis(field("reset_after")?.min(90_000_000)),
            max_concurrency: u32::try_from(field("max_concurrency")?)
                .ok()?
                .clamp(1, 1024),
        })
    }
}

/// What a request to speak in a stage came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakOutcome {
    /// Accepted: the VOICE_STATE_UPDATE with `suppress: false` follows.
    Unsuppressed,
    /// No Mute Members: the bot's hand is raised; a moderator must invite it.
    HandRaised,
    Failed(RestError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rest_api_is_asked_only_for_discords_own_gateway() {
        let url = |s: &str| Url::parse(s).unwrap();
        let discord = url(DISCORD_API);
        let sim_rest = url("http://127.0.0.1:9000/api/v10");
        assert!(serves_gateway(&discord, &url("wss://gateway.discord.gg")));
        assert!(!serves_gateway(&discord, &url("ws://127.0.0.1:9001")));
        assert!(serves_gateway(&sim_rest, &url("ws://127.0.0.1:9001")));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_rest_url(DISCORD_API).is_ok());
        assert!(check_rest_url("http://127.0.0.1:9000/api/v10").is_ok());
        assert!(check_rest_url("http://[::1]:9000/api/v10").is_ok());
        assert!(matches!(
            check_rest_url("http://discord.com/api/v10"),
            Err(UrlError::InsecureRemote(_))
        ));
        assert!(matches!(
            check_rest_url("wss://discord.com"),
            Err(UrlError::Scheme(_))
        ));
    }
}
