//! The endpoints: each parses and checks what the client sent, then asks the app through the
//! [`AppLink`]. `openapi.json` beside this file describes exactly these routes (a test in
//! `tests/app/api.rs` calls every operation it lists).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::bridge::{AppLink, Reply, Request as AppRequest};
use super::error::ApiError;
use super::events::EventHub;
use super::guard::{self, Guard};
use super::{overlay, ws};

/// The OpenAPI 3.0 description, served as is.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(link: AppLink, gate: Arc<Guard>, hub: EventHub) -> Router {
    Router::new()
        .route(
            "/events",
            get(move |request: Request| ws::events(hub.clone(), request)),
        )
        .route("/overlay", get(overlay::page))
        .route("/v1/sounds", get(sounds))
        .route("/v1/sounds/{id}/play", post(play_id))
        .route("/v1/sounds/{id}/stop", post(stop_id))
        .route("/v1/play", post(play_name))
        .route("/v1/stop-all", post(stop_all))
        .route("/v1/ptt", post(push_to_talk))
        .route("/v1/volume", put(volume))
        .route("/v1/status", get(status))
        .route(guard::PUBLIC_PATH, get(openapi))
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::wrong_method() })
        // Layers run outside in: the guard first, then the cap on bodies read by `JsonBody`.
        .layer(DefaultBodyLimit::max(super::MAX_BODY))
        .layer(middleware::from_fn_with_state(gate, guard::check))
        .with_state(link)
}

async fn sounds(State(app): State<AppLink>) -> Reply {
    app.ask(AppRequest::Sounds).await
}

async fn status(State(app): State<AppLink>) -> Reply {
    app.ask(AppRequest::Status).await
}

async fn play_id(State(app): State<AppLink>, id: Result<Path<String>, PathRejection>) -> Reply {
    app.ask(AppRequest::PlayId(sound_id(id)?)).await
}

async fn stop_id(State(app): State<AppLink>, id: Result<Path<String>, PathRejection>) -> Reply {
    app.ask(AppRequest::StopSound(sound_id(id)?)).await
}

async fn stop_all(State(app): State<AppLink>) -> Reply {
    app.ask(AppRequest::StopAll).await
}

#[derive(Deserialize)]
struct PlayName {
    name: String,
}

async fn play_name(State(app): State<AppLink>, JsonBody(body): JsonBody<PlayName>) -> Reply {
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name is empty"));
    }
    app.ask(AppRequest::PlayName(body.name)).await
}

#[derive(Deserialize)]
struct PushToTalk {
    down: bool,
}

async fn push_to_talk(State(app): State<AppLink>, JsonBody(body): JsonBody<PushToTalk>) -> Reply {
    app.ask(AppRequest::PushToTalk(body.down)).await
}

#[derive(Deserialize)]
struct Volume {
    /// f64 so that 1e300 is refused as out of range rather than becoming an infinite f32.
    master: f64,
}

async fn volume(State(app): State<AppLink>, JsonBody(body): JsonBody<Volume>) -> Reply {
    if !(0.0..=2.0).contains(&body.master) {
        return Err(ApiError::invalid(format!(
            "master must be between 0.0 and 2.0 (1.0 is unchanged), not {}",
            body.master
        )));
    }
    app.ask(AppRequest::MasterVolume(body.master as f32)).await
}

async fn openapi() -> Response {
    // A constant that a unit test parses: valid JSON, so serving the text as is is exact.
    let mut r = (StatusCode::OK, OPENAPI).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A sound id from the path: anything but a number names no sound.
fn sound_id(path: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    raw.parse::<u64>()
        .map_err(|_| ApiError::not_found(format!("no sound has the id {raw:?} (ids are numbers)")))
}

/// A JSON body whose every failure is a JSON error: 413 past the size cap, 400 for what is not
/// JSON, 422 for JSON of the wrong shape. The content type is not checked: button tools send
/// all sorts, and the bearer key is what keeps web pages out.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
                _ => ApiError::bad_request(format!("could not read the body: {}", e.body_text())),
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => ApiError::invalid(e.to_string()),
                _ => ApiError::bad_request(format!("the body is not JSON: {e}")),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_json_with_bearer_security() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for p in [
            "/v1/sounds",
            "/v1/sounds/{id}/play",
            "/v1/sounds/{id}/stop",
            "/v1/play",
            "/v1/stop-all",
            "/v1/ptt",
            "/v1/volume",
            "/v1/status",
            "/openapi.json",
            "/events",
            "/overlay",
        ] {
            assert!(paths.contains(&p), "{p} is not documented");
        }
        assert_eq!(paths.len(), 11, "undocumented or extra paths: {paths:?}");
    }
}
