//! `GET /events`: the WebSocket that streams [`super::events`] to one client.
//!
//! The upgrade is hyper's, the protocol tokio-tungstenite's. Each client has a task of its
//! own on the API's runtime: it reads the shared broadcast ring at its own pace, and when it
//! falls [`super::events::QUEUE`] messages behind, or a send stalls for [`SEND_WAIT`], it is
//! closed (code 4000) instead of holding anyone else up.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::error::ApiError;
use super::events::{ClientSlot, EventHub, Subscription};

/// A send that does not complete in this long (a client that stopped reading, with full
/// socket buffers) drops the client.
pub const SEND_WAIT: Duration = Duration::from_secs(5);

/// The close code for a client that fell too far behind (private range, 4000-4999).
pub const TOO_SLOW: u16 = 4000;

/// Clients only ever send pings and a close: anything large is refused by the protocol.
const MAX_INCOMING: usize = 4096;

/// The handler: checks the origin and the upgrade headers, answers 101 and leaves the
/// connection to a task of its own.
pub async fn events(hub: EventHub, mut request: Request) -> Response {
    if !same_origin(request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "only pages served by this API (the overlay) may open /events",
        )
        .into_response();
    }
    let Some(accept) = accept_key(request.headers()) else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "/events is a WebSocket: send a WebSocket upgrade (version 13)",
        )
        .into_response();
    };
    let Some(slot) = hub.admit() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} event clients are connected already",
                super::events::MAX_CLIENTS
            ),
        )
        .into_response();
    };
    let upgrade = hyper::upgrade::on(&mut request);
    // Subscribed before the 101 goes out: the client misses nothing from here on.
    let subscription = hub.subscribe();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => serve(TokioIo::new(io), subscription, slot).await,
            Err(e) => tracing::debug!(target: "voxboard::api", "event client left early: {e}"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}

/// `Sec-WebSocket-Accept` for a well-formed version-13 upgrade request, else `None`.
fn accept_key(h: &HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let version_13 = h
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !(has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
        && version_13)
    {
        return None;
    }
    let key = h.get(header::SEC_WEBSOCKET_KEY)?;
    Some(derive_accept_key(key.as_bytes()))
}

/// No `Origin` (a program, not a browser page), or the API's own loopback origin. Comparing
/// with `Host` alone would let a DNS-rebinding page in (its Origin and Host name the same
/// foreign name): the host must also be a loopback name.
pub fn same_origin(h: &HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), h.get(header::HOST).map(|v| v.to_str()))
    else {
        return false;
    };
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    let loopback = matches!(name, "127.0.0.1" | "localhost" | "[::1]");
    loopback && origin.eq_ignore_ascii_case(&format!("http://{host}"))
}

/// Sends the snapshot, then every event, until the client leaves, lags or stalls.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(io: S, sub: Subscription, _slot: ClientSlot) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING));
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let Subscription { snapshot, mut rx } = sub;
    if !send(&mut ws, Message::text(snapshot)).await {
        return;
    }
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(text) => {
                    if !send(&mut ws, Message::Text(text)).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::info!(target: "voxboard::api", "an event client fell {n} events behind; dropped");
                    close(&mut ws, CloseCode::Library(TOO_SLOW), "too slow: events were lost").await;
                    return;
                }
                Err(RecvError::Closed) => {
                    close(&mut ws, CloseCode::Away, "Voxboard is closing").await;
                    return;
                }
            },
            // Pings are answered by the protocol itself; a close, an error or EOF ends here.
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Whether the message went out in time.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    message: Message,
) -> bool {
    matches!(
        tokio::time::timeout(SEND_WAIT, ws.send(message)).await,
        Ok(Ok(()))
    )
}

async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    code: CloseCode,
    reason: &'static str,
) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(SEND_WAIT, ws.close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_programs_and_the_apis_own_pages_are_let_in() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:7337")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:7337"),
            ("origin", "http://127.0.0.1:7337")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "localhost:7338"),
            ("origin", "http://localhost:7338")
        ])));
        for (host, origin) in [
            ("127.0.0.1:7337", "http://evil.example"),
            ("127.0.0.1:7337", "http://127.0.0.1:8080"),
            ("127.0.0.1:7337", "null"),
            // DNS rebinding: a foreign name resolved to 127.0.0.1.
            ("evil.example:7337", "http://evil.example:7337"),
        ] {
            assert!(
                !same_origin(&headers(&[("host", host), ("origin", origin)])),
                "{origin} on {host}"
            );
        }
    }

    /// A client that stops reading: its socket fills, the server's task stops taking events,
    /// and once the ring has moved on by more than its size the client is closed with 4000,
    /// while publishing never waited.
    #[test]
    fn a_client_that_falls_behind_is_closed_as_too_slow() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let hub = EventHub::default();
            // A tiny pipe: a few events fill it.
            let (server_io, client_io) = tokio::io::duplex(256);
            let sub = hub.subscribe();
            let slot = hub.admit().expect("a slot");
            let server = tokio::spawn(serve(server_io, sub, slot));
            let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
            let event = serde_json::json!({"event": "sound_progress", "progress": 0.5});
            for _ in 0..super::super::events::QUEUE + 50 {
                hub.publish_raw(vec![event.clone()]);
                // Let the server's task run: it blocks on the full pipe, not on the hub.
                tokio::task::yield_now().await;
            }
            let mut texts = 0;
            let code = loop {
                match client.next().await {
                    Some(Ok(Message::Text(_))) => texts += 1,
                    Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    other => panic!("the stream ended without a close: {other:?}"),
                }
            };
            assert_eq!(code, Some(TOO_SLOW));
            assert!(
                texts < super::super::events::QUEUE,
                "{texts} messages before the close"
            );
            server.await.unwrap();
            assert_eq!(hub.clients.load(std::sync::atomic::Ordering::Acquire), 0);
        });
    }

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        let h = headers(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        // The example of RFC 6455 §1.3.
        assert_eq!(
            accept_key(&h).as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(accept_key(&headers(&[("upgrade", "websocket")])), None);
    }
}
