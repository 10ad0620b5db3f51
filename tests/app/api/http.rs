//! The endpoints over HTTP: what is heard, what changes in the app, and every refusal.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;
use voxboard::api::RateLimit;
use voxboard::board::store::Store;
use voxboard::board::{Board, Tab};

use super::support::{ApiApp, ids};
use crate::ui_support::{Env, board_with, step_until, write_tone};

/// "Tone" and "Chime", joined to guild 100; both loop, so each plays until it is stopped
/// (no check can miss a sound that already ended on a slow machine).
pub fn playing_env() -> Env {
    Env::new(
        |dir| {
            let mut b = board_with(dir, &["Tone", "Chime"], 1.0);
            for s in &mut b.tabs[0].sounds {
                s.looped = true;
            }
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    )
}

/// "Airhorn" and "Applause" on the first tab, another "AIRHORN" on a second; no engine.
fn board_env() -> Env {
    Env::new(
        |dir| {
            let mut b: Board = board_with(dir, &["Airhorn", "Applause"], 0.1);
            b.tabs.push(Tab::new("More"));
            let path = dir.join("other-airhorn.wav");
            write_tone(&path, 880.0, 0.1);
            let id = b.add_sound(1, path);
            if let Some(s) = b.sound_mut(id) {
                s.name = "AIRHORN".into();
            }
            b
        },
        false,
    )
}

#[test]
fn a_sound_played_over_the_api_is_heard_and_shows_in_the_status() {
    let mut app = ApiApp::start(playing_env(), RateLimit::default());
    app.wait_ready(100);

    let r = app.call("GET", "/v1/sounds", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["tabs"], json!(["Sounds"]));
    let tone = r.json["sounds"][0].clone();
    assert_eq!(
        (tone["name"].as_str(), tone["tab"].as_str()),
        (Some("Tone"), Some("Sounds"))
    );
    let tone_id = tone["id"].as_u64().expect("id");
    assert_eq!(r.json["sounds"][1]["name"], "Chime");

    // By name, in any case and with stray spaces, as a person types it into a button tool.
    let r = app.call("POST", "/v1/play", Some(json!({"name": "  tONE "})));
    assert!(r.status == 200 || r.status == 202, "{r:?}");
    assert_eq!(r.json["id"], tone_id);
    assert!(["playing", "loading"].contains(&r.json["state"].as_str().unwrap_or("")));
    app.wait_heard(100, 50);

    let r = app.call("GET", "/v1/status", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["engine"], "running");
    let conn = &r.json["connections"][0];
    assert_eq!(
        (conn["guild_id"].as_str(), conn["phase"].as_str()),
        (Some("100"), Some("ready"))
    );
    let playing = &r.json["playing"][0];
    assert_eq!(playing["sound_id"], tone_id, "{r:?}");
    assert_eq!(playing["name"], "Tone");
    assert!((0.0..=1.0).contains(&playing["progress"].as_f64().unwrap_or(-1.0)));

    let r = app.call("POST", &format!("/v1/sounds/{tone_id}/stop"), None);
    assert_eq!(
        (r.status, r.json["stopped"]["id"].as_u64()),
        (200, Some(tone_id))
    );
    step_until(&mut app.h, Duration::from_secs(10), "the loop stops", |h| {
        h.state().core.progress(tone_id).is_none()
    });

    // By id.
    let chime_id = tone_id + 1;
    let r = app.call("POST", &format!("/v1/sounds/{chime_id}/play"), None);
    assert!(r.status == 200 || r.status == 202, "{r:?}");
    step_until(
        &mut app.h,
        Duration::from_secs(10),
        "the chime plays",
        |h| h.state().core.progress(chime_id).is_some(),
    );
    let violations = app.env.sim.as_ref().expect("sim").violations();
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn stop_all_push_to_talk_and_volume_change_the_app() {
    let mut app = ApiApp::start(playing_env(), RateLimit::default());
    app.wait_ready(100);
    let id = app.h.state().core.board.tabs[0].sounds[0].id;
    let r = app.call("POST", &format!("/v1/sounds/{id}/play"), None);
    assert!(r.status == 200 || r.status == 202, "{r:?}");
    step_until(&mut app.h, Duration::from_secs(10), "the loop plays", |h| {
        h.state().core.progress(id).is_some()
    });
    let r = app.call("POST", "/v1/stop-all", None);
    assert_eq!((r.status, r.json["stopped"].as_str()), (200, Some("all")));
    assert!(app.h.state().core.sent.contains(&"stop_all"));
    step_until(&mut app.h, Duration::from_secs(10), "nothing plays", |h| {
        h.state().core.status.playing.is_empty()
    });

    let r = app.call("POST", "/v1/ptt", Some(json!({"down": true})));
    assert_eq!(
        (r.status, r.json["push_to_talk"].as_bool()),
        (200, Some(true))
    );
    step_until(
        &mut app.h,
        Duration::from_secs(10),
        "the engine holds push-to-talk",
        |h| h.state().core.ptt_held && h.state().core.status.push_to_talk,
    );
    // Held across frames: the button and the hotkey being up do not release it.
    app.h.run_steps(5);
    assert!(app.h.state().core.ptt_held);
    let r = app.call("POST", "/v1/ptt", Some(json!({"down": false})));
    assert_eq!(r.status, 200, "{r:?}");
    step_until(
        &mut app.h,
        Duration::from_secs(10),
        "push-to-talk released",
        |h| !h.state().core.ptt_held && !h.state().core.status.push_to_talk,
    );

    let r = app.call("PUT", "/v1/volume", Some(json!({"master": 0.5})));
    assert_eq!((r.status, r.json["master"].as_f64()), (200, Some(0.5)));
    assert_eq!(app.h.state().core.board.settings.master_volume, 0.5);
    assert_eq!(
        app.call("GET", "/v1/status", None).json["master_volume"],
        0.5
    );
    assert!(app.h.state().core.flush_saves(Duration::from_secs(5)));
    let saved = Store::new(app.env.dir.path()).load().board;
    assert_eq!(saved.settings.master_volume, 0.5);
}

#[test]
fn the_key_is_required_and_never_echoed() {
    let mut app = ApiApp::start(board_env(), RateLimit::default());
    let key = app.key.clone();
    for auth in [
        None,
        Some("Bearer wrong-key".to_owned()),
        Some(format!("Basic {key}")),
        Some(format!("Bearer {key}x")),
    ] {
        let r = app.call_raw("GET", "/v1/sounds", auth.clone(), None);
        assert_eq!(r.status, 401, "{auth:?}: {r:?}");
        assert_eq!(r.json["error"], "unauthorized");
        assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
        assert!(!r.json.to_string().contains(&key));
    }
    // Refused before anything happens in the app.
    let r = app.call_raw("POST", "/v1/stop-all", None, None);
    assert_eq!(r.status, 401);
    assert!(!app.h.state().core.sent.contains(&"stop_all"));
    assert_eq!(app.call("GET", "/v1/sounds", None).status, 200);
    let r = app.call_raw("GET", "/openapi.json", None, None);
    assert_eq!(r.status, 200, "the description needs no key");
}

#[test]
fn unknown_ambiguous_oversized_and_invalid_requests_get_json_errors() {
    let mut app = ApiApp::start(board_env(), RateLimit::default());
    let horns: Vec<u64> = app
        .h
        .state()
        .core
        .board
        .sounds()
        .filter(|s| s.name.eq_ignore_ascii_case("airhorn"))
        .map(|s| s.id)
        .collect();

    let r = app.call("POST", "/v1/play", Some(json!({"name": "airhorn"})));
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (409, Some("ambiguous")),
        "{r:?}"
    );
    assert_eq!(ids(&r.json["matches"]), horns);
    let r = app.call("POST", "/v1/play", Some(json!({"name": "horn"})));
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (404, Some("not_found")),
        "{r:?}"
    );
    assert_eq!(ids(&r.json["similar"]), horns, "names containing it");
    for path in [
        "/v1/sounds/999/play",
        "/v1/sounds/abc/play",
        "/v1/sounds/999/stop",
    ] {
        let r = app.call("POST", path, None);
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let r = app.call("GET", "/v1/nothing", None);
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (404, Some("no_route"))
    );
    let r = app.call("GET", "/v1/stop-all", None);
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // No bot token in this app: a sound cannot play, and the API says why.
    let r = app.call("POST", &format!("/v1/sounds/{}/play", horns[0]), None);
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (503, Some("not_connected"))
    );

    let big = json!({"name": "x".repeat(17 * 1024)});
    let r = app.call("POST", "/v1/play", Some(big));
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (413, Some("too_large"))
    );
    let status = chunked_post(&app, "/v1/play", &"y".repeat(17 * 1024));
    assert_eq!(
        status, 413,
        "a body without a declared length is capped too"
    );

    for bad in [
        json!({"master": 2.5}),
        json!({"master": -0.1}),
        json!({"master": 1e300}),
        json!({"master": "loud"}),
        json!({}),
    ] {
        let r = app.call("PUT", "/v1/volume", Some(bad.clone()));
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (422, Some("invalid")),
            "{bad}"
        );
    }
    assert_eq!(app.h.state().core.board.settings.master_volume, 1.0);
    let auth = Some(format!("Bearer {}", app.key));
    let r = app.call_raw("PUT", "/v1/volume", auth, Some(b"loud".to_vec()));
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (400, Some("bad_request"))
    );
    let r = app.call("POST", "/v1/ptt", Some(json!({"down": "yes"})));
    assert_eq!(r.status, 422, "{r:?}");
    let r = app.call("POST", "/v1/play", Some(json!({"name": "  "})));
    assert_eq!(r.status, 422, "{r:?}");
    assert!(!app.h.state().core.ptt_held);
}

/// A POST with a chunked body (no Content-Length) over a plain socket; returns the status.
fn chunked_post(app: &ApiApp, path: &str, body: &str) -> u16 {
    let addr = app.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.key
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before the whole body is sent.
    let _ = s.write_all(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes());
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"))
}

#[test]
fn a_flood_is_answered_429_with_retry_after() {
    // Five requests, then one token in 1000 s: no slowness of the machine can refill it.
    let limit = RateLimit {
        per_second: 0.001,
        burst: 5.0,
    };
    let mut app = ApiApp::start(board_env(), limit);
    for _ in 0..5 {
        assert_eq!(app.call_raw("GET", "/openapi.json", None, None).status, 200);
    }
    let r = app.call("GET", "/v1/sounds", None);
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (429, Some("rate_limited")),
        "{r:?}"
    );
    let wait: u64 = r
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!(wait >= 1, "{wait}");
    let r = app.call_raw("GET", "/v1/sounds", None, None);
    assert_eq!(r.status, 429, "the limit comes before the key check");
}

#[test]
fn every_documented_operation_exists() {
    let mut app = ApiApp::start(board_env(), RateLimit::default());
    let doc = app.call_raw("GET", "/openapi.json", None, None).json;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let id = app.h.state().core.board.tabs[0].sounds[0].id;
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        if ["/events", "/overlay"].contains(&path.as_str()) {
            // Not JSON: a WebSocket and an HTML page (tests/app/api/events.rs, overlay.rs).
            continue;
        }
        for method in item.as_object().expect("operations").keys() {
            let body = match path.as_str() {
                "/v1/play" => Some(json!({"name": "Applause"})),
                "/v1/ptt" => Some(json!({"down": false})),
                "/v1/volume" => Some(json!({"master": 1.0})),
                _ => None,
            };
            let url_path = path.replace("{id}", &id.to_string());
            let r = app.call(&method.to_uppercase(), &url_path, body);
            let code = r.json["error"].as_str().unwrap_or("");
            assert!(
                !["no_route", "method_not_allowed", "bad_request", "invalid"].contains(&code),
                "{method} {path}: {r:?}"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 9);
}

#[test]
fn push_to_talk_held_over_the_api_runs_out_unless_renewed() {
    let hold = Duration::from_millis(300);
    let mut app = ApiApp::start_with(board_env(), RateLimit::default(), hold);
    let r = app.call("POST", "/v1/ptt", Some(json!({"down": true})));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["release_after_s"], 0.3);
    let first = app.h.state().core.ptt_remote.expect("held");
    // Another "down" renews the hold: it ends later than the first would have.
    app.call("POST", "/v1/ptt", Some(json!({"down": true})));
    let renewed = app.h.state().core.ptt_remote.expect("held");
    assert!(renewed > first);
    assert!(app.h.state().core.ptt_held);
    // Never released by the controller: the app lets go by itself.
    step_until(
        &mut app.h,
        Duration::from_secs(10),
        "the hold runs out",
        |h| h.state().core.ptt_remote.is_none() && !h.state().core.ptt_held,
    );
}
