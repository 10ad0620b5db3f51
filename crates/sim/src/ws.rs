//! Websocket plumbing shared by the main and voice gateways.

use std::time::{Duration, Instant};

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::state::Ctl;

/// A client's byte stream: plain TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Ws = WebSocketStream<Box<dyn Io>>;

/// Accepts a websocket (after a TLS handshake when `tls` is set) and returns it with the
/// request's path and query ("/?v=8").
// The callback's Result type is tungstenite's, not ours to shrink.
#[allow(clippy::result_large_err)]
pub async fn accept(
    stream: TcpStream,
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> anyhow::Result<(Ws, String)> {
    let stream: Box<dyn Io> = match tls {
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            let handshake = acceptor.accept(stream);
            Box::new(tokio::time::timeout(Duration::from_secs(10), handshake).await??)
        }
        None => Box::new(stream),
    };
    let mut path = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: Response| {
        path = req.uri().to_string();
        Ok(resp)
    })
    .await?;
    Ok((ws, path))
}

/// The value of `name` in a request path's query string.
pub fn query_param(path: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(&format!("ws://sim{path}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Sends a close frame and waits briefly for the peer's reply, so the client reliably sees the code.
/// Codes 1005, 1006 and 1015 must never be sent (RFC 6455 §7.4.1): "closing" with them means
/// dropping the connection without a close frame.
async fn close(ws: &mut Ws, code: u16, reason: &str) {
    if matches!(code, 1005 | 1006 | 1015) {
        return;
    }
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: truncate(reason, MAX_REASON).to_owned().into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// A close frame's reason must fit in 123 bytes (RFC 6455 §5.5: 125-byte control payload).
const MAX_REASON: usize = 123;

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What the client did, reduced to what the gateways care about.
enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    /// Closed by the client with this code (None: no close frame / TCP dropped).
    Gone(Option<u16>),
    /// Ping/pong: handled by tungstenite.
    Nothing,
}

fn classify(msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Incoming {
    match msg {
        Some(Ok(Message::Text(t))) => Incoming::Text(t.to_string()),
        Some(Ok(Message::Binary(b))) => Incoming::Binary(b.to_vec()),
        Some(Ok(Message::Close(f))) => Incoming::Gone(f.map(|f| u16::from(f.code))),
        Some(Ok(_)) => Incoming::Nothing,
        Some(Err(_)) | None => Incoming::Gone(None),
    }
}

/// Discord times out a connection whose heartbeats stop; allow twice the interval (the first
/// heartbeat comes after interval * jitter) plus scheduling slack.
pub fn heartbeat_deadline(interval: Duration) -> Instant {
    Instant::now() + 2 * interval + Duration::from_millis(500)
}

/// What a gateway connection does with its socket's events; [`pump`] drives it.
pub trait Gateway {
    /// A close is queued: further client frames are ignored.
    fn closing(&self) -> bool;
    fn heartbeat_deadline(&self) -> Instant;
    fn on_heartbeat_missed(&mut self);
    fn on_text(&mut self, text: &str);
    fn on_binary(&mut self, bytes: &[u8]);
    /// The socket ended: closed by the client (`by_server` false, its code if any), or closed
    /// (with `code`) or dropped (None) by the simulator.
    fn on_end(&mut self, code: Option<u16>, by_server: bool);
}

/// Runs one connection: client frames to `g`, and `g`'s mailbox (`rx`) to the socket, in order.
pub async fn pump(mut ws: Ws, mut rx: UnboundedReceiver<Ctl>, g: &mut impl Gateway) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(g.heartbeat_deadline().into()), if !g.closing() => g.on_heartbeat_missed(),
            m = ws.next() => match classify(m) {
                Incoming::Text(t) if !g.closing() => g.on_text(&t),
                Incoming::Binary(b) if !g.closing() => g.on_binary(&b),
                Incoming::Gone(code) => return g.on_end(code, false),
                _ => {}
            },
            ctl = rx.recv() => match ctl {
                Some(Ctl::Send(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return g.on_end(None, false);
                    }
                }
                Some(Ctl::SendBinary(bytes)) => {
                    if ws.send(Message::binary(bytes)).await.is_err() {
                        return g.on_end(None, false);
                    }
                }
                Some(Ctl::Close(code, reason)) => {
                    close(&mut ws, code, &reason).await;
                    return g.on_end(Some(code), true);
                }
                Some(Ctl::Drop) | None => return g.on_end(None, true),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate(&long, MAX_REASON);
        assert!(cut.len() <= MAX_REASON && cut.len() >= MAX_REASON - 1);
        assert_eq!(truncate("short", MAX_REASON), "short");
    }

    #[test]
    fn reads_query_params() {
        assert_eq!(
            query_param("/?v=10&encoding=json", "v").as_deref(),
            Some("10")
        );
        assert_eq!(
            query_param("/?v=10&encoding=json", "encoding").as_deref(),
            Some("json")
        );
        assert_eq!(query_param("/", "v"), None);
    }
}
