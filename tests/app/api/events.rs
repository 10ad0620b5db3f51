//! `/events` over a real WebSocket (tokio-tungstenite) against the real app core and the
//! simulator: what a controller or the overlay sees, in order, and who is let in.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{Value, json};
use voxboard::api::RateLimit;

use super::http::playing_env;
use super::support::{ApiApp, EventClient};
use crate::ui_support::step_until;

/// Steps the app until a message received so far matches `pred`, collecting them in `seen`.
fn until_event(
    app: &mut ApiApp,
    rx: &Receiver<Value>,
    seen: &mut Vec<Value>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) {
    step_until(&mut app.h, Duration::from_secs(15), what, |_| {
        seen.extend(rx.try_iter());
        seen.iter().any(&pred)
    });
}

fn is(event: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == event
}

#[test]
fn events_arrive_in_order_while_a_sound_plays_stops_and_push_to_talk_is_held() {
    let mut app = ApiApp::start(playing_env(), RateLimit::default());
    let auth = Some(format!("Bearer {}", app.key));
    let client = EventClient::connect(&mut app, auth, "/events")
        .expect("the key in the header lets the client in");
    let rx = &client.rx;
    let mut seen = Vec::new();
    until_event(&mut app, rx, &mut seen, "the snapshot", is("snapshot"));
    assert_eq!(seen[0]["event"], "snapshot", "the snapshot comes first");
    // Ready before the client came (in the snapshot) or after it (an event).
    let ready = |c: &Value| c["guild_id"] == "100" && c["phase"] == "ready";
    until_event(&mut app, rx, &mut seen, "the guild is ready", |v| {
        (v["event"] == "connection" && ready(v))
            || v["connections"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(ready))
    });

    let tone = app.h.state().core.board.tabs[0].sounds[0].id;
    let r = app.call("POST", &format!("/v1/sounds/{tone}/play"), None);
    assert!(r.status == 200 || r.status == 202, "{r:?}");
    until_event(&mut app, rx, &mut seen, "progress past the start", |v| {
        v["event"] == "sound_progress" && v["progress"].as_f64().unwrap_or(0.0) > 0.0
    });
    let r = app.call("POST", "/v1/ptt", Some(json!({"down": true})));
    assert_eq!(r.status, 200, "{r:?}");
    until_event(&mut app, rx, &mut seen, "push-to-talk down", |v| {
        v["event"] == "push_to_talk" && v["down"] == true
    });
    let r = app.call("POST", "/v1/stop-all", None);
    assert_eq!(r.status, 200, "{r:?}");
    until_event(
        &mut app,
        rx,
        &mut seen,
        "the sound stops",
        is("sound_stopped"),
    );
    let r = app.call("POST", "/v1/ptt", Some(json!({"down": false})));
    assert_eq!(r.status, 200, "{r:?}");
    until_event(&mut app, rx, &mut seen, "push-to-talk up", |v| {
        v["event"] == "push_to_talk" && v["down"] == false
    });

    // Numbered one by one from the snapshot's number: none lost, none reordered.
    let seqs: Vec<u64> = seen
        .iter()
        .map(|v| v["seq"].as_u64().expect("seq"))
        .collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "{seen:#?}"
    );
    // One playback: started, then its progress rising, then stopped, named all along.
    let sound: Vec<&Value> = seen
        .iter()
        .filter(|v| v["event"].as_str().is_some_and(|e| e.starts_with("sound_")))
        .collect();
    assert_eq!(sound[0]["event"], "sound_started", "{sound:#?}");
    assert_eq!(
        sound.last().unwrap()["event"],
        "sound_stopped",
        "{sound:#?}"
    );
    let playback = &sound[0]["playback"];
    let mut last = -1.0;
    for v in &sound {
        assert_eq!(
            (&v["playback"], &v["sound_id"], &v["name"]),
            (playback, &json!(tone), &json!("Tone"))
        );
        let p = v["progress"].as_f64().expect("progress");
        if v["event"] == "sound_progress" {
            // Looping: the cursor wraps at the end of the file, so only each step's range
            // is certain. Progress events say something changed.
            assert!((0.0..=1.0).contains(&p) && p != last, "{sound:#?}");
        }
        last = p;
    }
    let ptt: Vec<&Value> = seen
        .iter()
        .filter(|v| v["event"] == "push_to_talk")
        .collect();
    assert_eq!(
        ptt.iter().map(|v| v["down"].clone()).collect::<Vec<_>>(),
        [json!(true), json!(false)]
    );
    let ptt_down = seen
        .iter()
        .position(|v| v["event"] == "push_to_talk")
        .unwrap();
    let stopped = seen.iter().position(is("sound_stopped")).unwrap();
    assert!(ptt_down < stopped, "in the order they happened: {seen:#?}");

    // A client that joins now starts from the state now: nothing plays, the guild is ready.
    let path = format!("/events?key={}", app.key);
    let late = EventClient::connect(&mut app, None, &path)
        .expect("the key in the query lets a browser in");
    let mut late_seen = Vec::new();
    until_event(
        &mut app,
        &late.rx,
        &mut late_seen,
        "the late snapshot",
        is("snapshot"),
    );
    let snap = &late_seen[0];
    assert_eq!(snap["playing"], json!([]), "{snap}");
    assert_eq!(snap["push_to_talk"], false);
    assert_eq!(snap["connections"][0]["phase"], "ready", "{snap}");
    assert!(
        snap["seq"].as_u64() >= seqs.last().copied(),
        "{snap} after {seqs:?}"
    );
}

#[test]
fn events_need_the_key_and_the_apis_own_origin() {
    let mut app = ApiApp::start(playing_env(), RateLimit::default());
    let refused = |app: &mut ApiApp, auth: Option<String>, path: &str| {
        EventClient::connect(app, auth, path)
            .err()
            .unwrap_or_else(|| panic!("{path} let in"))
    };
    assert_eq!(refused(&mut app, None, "/events"), 401);
    assert_eq!(
        refused(&mut app, Some("Bearer nope".into()), "/events"),
        401
    );
    assert_eq!(refused(&mut app, None, "/events?key=nope"), 401);
    let key = app.key.clone();
    // A page on another site that learnt the key still cannot listen.
    let foreign = EventClient::connect_with_origin(
        &mut app,
        &format!("/events?key={key}"),
        "http://evil.example",
    );
    assert_eq!(foreign.err(), Some(403));
    let own = app.url.clone();
    let page = EventClient::connect_with_origin(&mut app, &format!("/events?key={key}"), &own);
    assert!(page.is_ok(), "the overlay's own origin is let in");
    // A plain GET is told it needs an upgrade, as JSON.
    let r = app.call("GET", "/events", None);
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (426, Some("upgrade_required"))
    );
}
