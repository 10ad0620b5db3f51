//! What every request passes before it reaches a handler, cheapest first: the rate limit
//! (429), the declared body size (413) and the bearer key (401). None of it waits on anything
//! but a short, uncontended mutex, so a flood costs the UI thread and the engine nothing: the
//! requests it turns away never leave the API's own thread.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiKey;
use super::error::ApiError;

/// The one path served without the key: the API's description is not a secret, and tools
/// read it before they are configured.
pub const PUBLIC_PATH: &str = "/openapi.json";

/// The paths a browser opens by URL (an OBS browser source cannot send headers), where the
/// key may come as `?key=KEY` instead. Nowhere else: keys in URLs end up in histories.
pub const QUERY_KEY_PATHS: [&str; 2] = ["/events", "/overlay"];

/// A token bucket: `per_second` requests on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    /// Far more than a person on a Stream Deck, a Companion page polling for feedback or a
    /// script needs; little enough that a runaway loop cannot flood the app.
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 100.0,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Guard {
    /// Replaced when the user asks Settings for a new key.
    key: RwLock<ApiKey>,
    limit: RateLimit,
    bucket: Mutex<Bucket>,
}

impl Guard {
    pub fn new(key: ApiKey, limit: RateLimit) -> Self {
        Self {
            key: RwLock::new(key),
            limit,
            bucket: Mutex::new(Bucket {
                tokens: limit.burst,
                at: Instant::now(),
            }),
        }
    }

    /// Takes a token, or says how many seconds until the next one.
    fn take_token(&self) -> Result<(), u64> {
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * self.limit.per_second;
        b.tokens = (b.tokens + refill).min(self.limit.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = if self.limit.per_second > 0.0 {
            ((1.0 - b.tokens) / self.limit.per_second).ceil()
        } else {
            3600.0
        };
        Err(wait.clamp(1.0, 3600.0) as u64)
    }

    /// From now on only `key` lets requests in (connected `/events` clients stay).
    pub fn set_key(&self, key: ApiKey) {
        *self.key.write().unwrap_or_else(PoisonError::into_inner) = key;
    }

    fn matches(&self, candidate: &str) -> bool {
        self.key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .matches(candidate)
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|k| self.matches(k))
    }

    /// The bearer header, or on [`QUERY_KEY_PATHS`] a `key` query parameter.
    fn admits(&self, request: &Request) -> bool {
        let uri = request.uri();
        self.authorised(request.headers())
            || (QUERY_KEY_PATHS.contains(&uri.path())
                && query_key(uri.query()).is_some_and(|k| self.matches(k)))
    }
}

/// The `key` parameter of a query string. Keys are alphanumeric, so it is compared as sent
/// (a percent-encoded key simply does not match).
fn query_key(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("key="))
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A declared body over the limit is refused before it is read. Bodies without a length
/// (chunked) are capped while read, by `DefaultBodyLimit` in the router.
fn declared_too_large(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > super::MAX_BODY as u64)
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if let Err(wait) = guard.take_token() {
        return ApiError::rate_limited(wait).into_response();
    }
    if declared_too_large(request.headers()) {
        return ApiError::too_large().into_response();
    }
    if request.uri().path() != PUBLIC_PATH && !guard.admits(&request) {
        return ApiError::unauthorized().into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn only_the_bearer_key_is_let_in() {
        let key = ApiKey::generate();
        let g = Guard::new(key.clone(), RateLimit::default());
        assert!(g.authorised(&headers(&format!("Bearer {}", key.expose()))));
        assert!(g.authorised(&headers(&format!("bearer  {} ", key.expose()))));
        assert!(!g.authorised(&headers(&format!("Basic {}", key.expose()))));
        assert!(!g.authorised(&headers("Bearer nope")));
        assert!(!g.authorised(&headers("Bearer")));
        assert!(!g.authorised(&HeaderMap::new()));
    }

    #[test]
    fn the_query_key_counts_only_where_browsers_need_it() {
        let key = ApiKey::generate();
        let g = Guard::new(key.clone(), RateLimit::default());
        let req = |uri: String| {
            Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let k = key.expose();
        assert!(g.admits(&req(format!("/overlay?key={k}"))));
        assert!(g.admits(&req(format!("/events?x=1&key={k}"))));
        assert!(!g.admits(&req(format!("/v1/status?key={k}"))));
        assert!(!g.admits(&req("/events?key=nope".to_owned())));
        assert!(!g.admits(&req("/events".to_owned())));
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refuses_with_a_wait() {
        let g = Guard::new(
            ApiKey::generate(),
            RateLimit {
                // One token in 1000 s: no stall of the test thread can refill it.
                per_second: 0.001,
                burst: 3.0,
            },
        );
        for _ in 0..3 {
            assert_eq!(g.take_token(), Ok(()));
        }
        let wait = g.take_token().unwrap_err();
        assert!((900..=1000).contains(&wait), "{wait}");
    }

    #[test]
    fn declared_sizes_over_the_limit_are_too_large() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(16 * 1024u64));
        assert!(!declared_too_large(&h));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(16 * 1024u64 + 1));
        assert!(declared_too_large(&h));
    }
}
