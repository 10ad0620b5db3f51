//! `GET /overlay?key=…`: the OBS browser source. One self-contained page (`overlay.html`, no
//! external assets, transparent) that follows `/events` on the same origin, so it needs no
//! CORS: no endpoint sends `Access-Control-Allow-*`, and `/events` refuses other origins.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub const PAGE: &str = include_str!("overlay.html");

/// What the page may load: its own inline style and script, and a connection to its own
/// origin. Nothing else, so even an injected name could not fetch anything.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
                      script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; \
                      form-action 'none'";

pub async fn page() -> Response {
    let mut r = (StatusCode::OK, PAGE).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    // The key is in the page's URL: keep it out of referrers and caches.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
