//! Websocket plumbing shared by both gateways: URL rules, connecting, the token wrapper.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Discord's production gateway.
pub const DISCORD_GATEWAY: &str = "wss://gateway.discord.gg";

/// A bot token. It prints as `***` in every `Debug`/`Display`, so it cannot leak into logs or
/// panics by accident; [`Token::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into().trim().to_owned())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("'{0}' is not a valid URL")]
    Invalid(String),
    #[error(
        "URL must use wss:// or https:// (plain ws:// or http:// is allowed only for a loopback \
         address): {0}"
    )]
    InsecureRemote(String),
    #[error("URL must be wss:// for a gateway, https:// for the REST API: {0}")]
    Scheme(String),
    #[error("a resume URL may not move a wss:// session to plain ws://: {0}")]
    Downgrade(String),
}

/// Whether a host names this machine (127.0.0.0/8, ::1 or localhost).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Checks a gateway base URL: `wss://` anywhere, `ws://` only on loopback (the simulator).
pub fn check_gateway_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw).map_err(|_| UrlError::Invalid(raw.to_owned()))?;
    match url.scheme() {
        "wss" => Ok(url),
        "ws" if url.host_str().is_some_and(is_loopback_host) => Ok(url),
        "ws" => Err(UrlError::InsecureRemote(raw.to_owned())),
        _ => Err(UrlError::Scheme(raw.to_owned())),
    }
}

/// Checks READY's `resume_gateway_url` against the URL the session started on: the rule of
/// [`check_gateway_url`], and never from `wss://` to plain `ws://`, not even to loopback (a
/// server, or whoever sits in its place, must not move a TLS session onto a local plaintext port).
pub fn check_resume_url(raw: &str, gateway: &Url) -> Result<Url, UrlError> {
    let url = check_gateway_url(raw)?;
    if gateway.scheme() == "wss" && url.scheme() == "ws" {
        return Err(UrlError::Downgrade(raw.to_owned()));
    }
    Ok(url)
}

/// The main gateway URL with the query parameters the protocol requires.
pub fn main_gateway_url(base: &Url) -> String {
    let mut url = base.clone();
    url.set_path("/");
    url.set_query(Some("v=10&encoding=json"));
    url.to_string()
}

/// The voice gateway URL for a VOICE_SERVER_UPDATE endpoint (`host:port`, no scheme).
///
/// The port is kept as given (Discord moved voice servers off :443 in 2025). Plain `ws://` is
/// used only when the main gateway itself was plain loopback *and* the endpoint is loopback.
pub fn voice_gateway_url(endpoint: &str, main_gateway: &Url) -> Result<String, UrlError> {
    let host = endpoint
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(endpoint);
    let plain = main_gateway.scheme() == "ws" && is_loopback_host(host);
    let raw = format!("{}://{endpoint}/?v=8", if plain { "ws" } else { "wss" });
    Url::parse(&raw).map_err(|_| UrlError::Invalid(endpoint.to_owned()))?;
    Ok(raw)
}

/// The certificate authorities `wss://` connections trust: the Mozilla set (webpki-roots), the
/// system's store (so `SSL_CERT_FILE`, and the roots antivirus or company TLS proxies install,
/// work as in the browser), and any extra roots (tests add the simulator's certificate). The
/// rustls config is built on first use, on the connecting task: reading the system store is
/// file I/O, kept off the UI thread. Cheap to clone.
#[derive(Clone, Default)]
pub struct TlsTrust {
    extra: Arc<Vec<CertificateDer<'static>>>,
    config: Arc<OnceLock<Arc<rustls::ClientConfig>>>,
}

impl TlsTrust {
    /// Also trusts `extra` (each must parse as a certificate).
    pub fn with_extra_roots(
        extra: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<TlsTrust, rustls::Error> {
        let extra: Vec<_> = extra.into_iter().collect();
        let mut check = rustls::RootCertStore::empty();
        for cert in &extra {
            check.add(cert.clone())?;
        }
        Ok(TlsTrust {
            extra: Arc::new(extra),
            config: Arc::default(),
        })
    }

    pub(crate) fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.config
            .get_or_init(|| {
                install_crypto_provider();
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                roots.add_parsable_certificates(system_roots().iter().cloned());
                roots.add_parsable_certificates(self.extra.iter().cloned());
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Arc::new(config)
            })
            .clone()
    }
}

/// The system's root certificates, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system certificate store: {e}");
        }
        tracing::debug!("{} system root certificates", found.certs.len());
        found.certs
    })
}

impl fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TlsTrust(webpki + system + {} extra roots)",
            self.extra.len()
        )
    }
}

/// Connects a websocket (TLS for `wss://`, trusting `tls`), with a timeout.
pub async fn connect(
    url: &str,
    timeout: std::time::Duration,
    tls: &TlsTrust,
) -> anyhow::Result<WsStream> {
    let connector = Connector::Rustls(tls.client_config());
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector));
    let (ws, _response) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to {}", redact_query(url)))?
        .map_err(|e| anyhow::anyhow!(describe_connect_error(&e)))?;
    Ok(ws)
}

/// One plain line for a failed connect; a TLS failure says so (tungstenite wraps it in an I/O
/// error whose text would otherwise repeat itself).
fn describe_connect_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => format!("TLS handshake failed: {tls}"),
            None => io.to_string(),
        },
        other => other.to_string(),
    }
}

/// rustls needs a process-wide crypto provider; installing twice is harmless.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ws_only_on_loopback() {
        assert!(check_gateway_url("wss://gateway.discord.gg").is_ok());
        assert!(check_gateway_url("ws://127.0.0.1:5000").is_ok());
        assert!(check_gateway_url("ws://localhost:5000").is_ok());
        assert!(check_gateway_url("ws://[::1]:5000").is_ok());
        assert_eq!(
            check_gateway_url("ws://gateway.discord.gg"),
            Err(UrlError::InsecureRemote("ws://gateway.discord.gg".into()))
        );
        assert!(check_gateway_url("http://127.0.0.1").is_err());
    }

    #[test]
    fn a_resume_url_never_downgrades_wss() {
        let prod = check_gateway_url(DISCORD_GATEWAY).unwrap();
        let sim = check_gateway_url("ws://127.0.0.1:4000").unwrap();
        let tls_sim = check_gateway_url("wss://127.0.0.1:4000").unwrap();
        let resume = "wss://gateway-us-east1-b.discord.gg";
        assert_eq!(
            check_resume_url(resume, &prod).unwrap().as_str(),
            "wss://gateway-us-east1-b.discord.gg/"
        );
        assert!(check_resume_url("ws://127.0.0.1:4001", &sim).is_ok());
        assert!(check_resume_url("wss://127.0.0.1:4001", &sim).is_ok());
        for gateway in [&prod, &tls_sim] {
            for plain in ["ws://127.0.0.1:4001", "ws://localhost", "ws://[::1]:80"] {
                assert_eq!(
                    check_resume_url(plain, gateway),
                    Err(UrlError::Downgrade(plain.into()))
                );
            }
        }
        assert_eq!(
            check_resume_url("ws://evil.example", &sim),
            Err(UrlError::InsecureRemote("ws://evil.example".into()))
        );
        assert!(check_resume_url("https://gateway.discord.gg", &prod).is_err());
    }

    #[test]
    fn voice_url_keeps_the_port_and_follows_the_gateway_scheme() {
        let prod = check_gateway_url(DISCORD_GATEWAY).unwrap();
        assert_eq!(
            voice_gateway_url("sweetwater-12345.discord.media:2048", &prod).unwrap(),
            "wss://sweetwater-12345.discord.media:2048/?v=8"
        );
        let sim = check_gateway_url("ws://127.0.0.1:4000").unwrap();
        assert_eq!(
            voice_gateway_url("127.0.0.1:4100", &sim).unwrap(),
            "ws://127.0.0.1:4100/?v=8"
        );
        // A loopback gateway never downgrades a remote voice server to plain ws.
        assert_eq!(
            voice_gateway_url("c-1.discord.media:443", &sim).unwrap(),
            "wss://c-1.discord.media:443/?v=8"
        );
        assert_eq!(
            main_gateway_url(&prod),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
    }

    #[test]
    fn token_never_prints() {
        let t = Token::new("secret-value");
        assert_eq!(format!("{t} {t:?}"), "*** Token(***)");
    }
}
