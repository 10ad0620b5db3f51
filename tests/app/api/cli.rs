//! `voxboard trigger`, `stop-all` and `ptt` (the real binary) against a running app core:
//! what they play is heard, their exit codes, and no key in their output.

use std::time::Duration;

use voxboard::api::{RateLimit, runtime_file};
use voxboard::board::Tab;

use super::support::{ApiApp, cli, text};
use crate::ui_support::{Env, board_with, step_until, write_tone};

/// "Tone" and "Horn" joined to guild 100, and a second "HORN" on another tab (looped, so a
/// check that it plays cannot come too late).
fn env() -> Env {
    Env::new(
        |dir| {
            let mut b = board_with(dir, &["Tone", "Horn"], 1.0);
            b.tabs.push(Tab::new("More"));
            let path = dir.join("other-horn.wav");
            write_tone(&path, 880.0, 0.2);
            let id = b.add_sound(1, path);
            if let Some(s) = b.sound_mut(id) {
                s.name = "HORN".into();
                s.looped = true;
            }
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    )
}

/// Exit code, output, and the check that the key is nowhere in it (logging at trace).
fn run(app: &mut ApiApp, args: &[&str]) -> (Option<i32>, String) {
    let out = app.voxboard(args);
    let all = text(&out);
    assert!(
        !all.contains(&app.key),
        "the key leaked into {args:?}:\n{all}"
    );
    (out.status.code(), all)
}

#[test]
fn trigger_plays_into_the_running_app_and_says_what_went_wrong() {
    let mut app = ApiApp::start(env(), RateLimit::default());
    app.wait_ready(100);

    let (code, out) = run(&mut app, &["trigger", "tone"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Tone (id 1, tab Sounds)"), "{out}");
    app.wait_heard(100, 40);

    let (code, out) = run(&mut app, &["trigger", "horn"]);
    assert_eq!(code, Some(5), "ambiguous: {out}");
    assert!(
        out.contains("Horn (id 2, tab Sounds)") && out.contains("HORN (id 3, tab More)"),
        "{out}"
    );

    let (code, out) = run(&mut app, &["trigger", "trumpet"]);
    assert_eq!(code, Some(4), "no such sound: {out}");
    assert!(out.contains("no sound is called \"trumpet\""), "{out}");

    // A number that names no sound is an id.
    let (code, out) = run(&mut app, &["trigger", "3"]);
    assert_eq!(code, Some(0), "{out}");
    step_until(&mut app.h, Duration::from_secs(10), "sound 3 plays", |h| {
        h.state().core.progress(3).is_some()
    });
    let (code, out) = run(&mut app, &["trigger", "99"]);
    assert_eq!(code, Some(4), "{out}");
}

#[test]
fn stop_all_and_ptt_reach_the_app_and_a_closed_app_is_not_running() {
    let mut app = ApiApp::start(env(), RateLimit::default());
    app.wait_ready(100);

    let (code, out) = run(&mut app, &["ptt", "down"]);
    assert_eq!(code, Some(0), "{out}");
    step_until(
        &mut app.h,
        Duration::from_secs(10),
        "push-to-talk held",
        |h| h.state().core.status.push_to_talk,
    );
    let (code, out) = run(&mut app, &["ptt", "up"]);
    assert_eq!(code, Some(0), "{out}");
    step_until(
        &mut app.h,
        Duration::from_secs(10),
        "push-to-talk released",
        |h| !h.state().core.status.push_to_talk,
    );
    let (code, out) = run(&mut app, &["stop-all"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(app.h.state().core.sent.contains(&"stop_all"));

    // The app closes: its runtime file goes, and the CLI says no app runs.
    let file = runtime_file::path_in(app.runtime.path(), runtime_file::Instance::App);
    assert!(file.is_file());
    app.h.state_mut().finish();
    assert!(!file.exists(), "the runtime file outlived the app");
    let (code, out) = run(&mut app, &["trigger", "tone"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("not running"), "{out}");
}

#[test]
fn a_runtime_file_left_by_a_dead_app_means_not_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let info = runtime_file::RuntimeInfo {
        url: format!("http://127.0.0.1:{port}"),
        key: "stale-key-71c2".into(),
        pid: 1,
    };
    runtime_file::write(dir.path(), runtime_file::Instance::App, &info).expect("write");
    let out = cli(dir.path(), &["stop-all".to_owned()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("not running") && !all.contains("stale-key-71c2"),
        "{all}"
    );

    let empty = tempfile::tempdir().expect("tempdir");
    let out = cli(empty.path(), &["ptt".to_owned(), "down".to_owned()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn the_cli_finds_the_demo_when_no_app_answers_and_the_app_first() {
    let mut app = ApiApp::start(
        crate::ui_support::Env::new(|_| voxboard::board::Board::default(), false),
        voxboard::api::RateLimit::default(),
    );
    let live = runtime_file::read(app.runtime.path(), runtime_file::Instance::App).expect("file");
    let dir = tempfile::tempdir().expect("tempdir");
    // Only a demo runs (its file names the live app here).
    runtime_file::write(dir.path(), runtime_file::Instance::Demo, &live).expect("write");
    let d = dir.path().to_owned();
    let out = app.stepping("stop-all", move || cli(&d, &["stop-all".to_owned()]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(app.h.state().core.sent.contains(&"stop_all"));

    // A crashed app's file beside it: nothing answers there, so the demo is used.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dead = runtime_file::RuntimeInfo {
        url: format!("http://127.0.0.1:{port}"),
        key: "dead-key-5e1f".into(),
        pid: 1,
    };
    runtime_file::write(dir.path(), runtime_file::Instance::App, &dead).expect("write");
    let d = dir.path().to_owned();
    let out = app.stepping("ptt up", move || {
        cli(&d, &["ptt".to_owned(), "up".to_owned()])
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("dead-key-5e1f"));

    // A live app and a demo whose file is stale: the app is asked first and answers.
    runtime_file::write(dir.path(), runtime_file::Instance::App, &live).expect("write");
    runtime_file::write(dir.path(), runtime_file::Instance::Demo, &dead).expect("write");
    let d = dir.path().to_owned();
    let out = app.stepping("stop-all", move || cli(&d, &["stop-all".to_owned()]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
