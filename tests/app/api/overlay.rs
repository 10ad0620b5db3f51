//! The OBS overlay in headless Debian Chromium against the real app core and the simulator:
//! while a sound plays, the page (following `/events`) shows its name. The DOM dump is
//! checked; the screenshot goes to `target/screenshots/overlay.png` for people to look at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use voxboard::api::RateLimit;

use super::http::playing_env;
use super::support::ApiApp;
use crate::prereq::{self, CHROMIUM};
use crate::ui_support::step_until;

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

/// Headless Chromium on `url` with `action` (`--dump-dom`, `--screenshot=…`): its stdout.
/// Virtual time lets the page's script run (WebSocket, first events) before the dump.
fn chromium(url: &str, profile: &Path, action: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            // Root in CI containers: Chromium's sandbox needs user namespaces it may not have.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--no-proxy-server",
            "--hide-scrollbars",
            // Transparent, as OBS composites it.
            "--default-background-color=00000000",
            "--window-size=800,200",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(url)
        .output()
        .expect("run chromium");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium {action} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_overlay_shows_the_sound_playing_in_headless_chromium() {
    prereq::require(&[CHROMIUM]);
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let mut app = ApiApp::start(playing_env(), RateLimit::default());
    app.wait_ready(100);
    let chime = app.h.state().core.board.tabs[0].sounds[1].id;
    let r = app.call("POST", &format!("/v1/sounds/{chime}/play"), None);
    assert!(r.status == 200 || r.status == 202, "{r:?}");
    step_until(
        &mut app.h,
        Duration::from_secs(10),
        "the chime plays",
        |h| {
            h.state()
                .core
                .status
                .playing
                .iter()
                .any(|p| p.sound == Some(chime))
        },
    );

    let url = format!("{}/overlay?key={}", app.url, app.key);
    let profile = tempfile::tempdir().expect("chromium profile");
    let (u, p) = (url.clone(), profile.path().to_owned());
    let dom = app.stepping("chromium --dump-dom", move || {
        chromium(&u, &p, "--dump-dom")
    });
    assert!(
        dom.contains(r#"<div id="name">Chime</div>"#),
        "the overlay does not show the sound: {dom}"
    );
    assert!(dom.contains(r#"data-state="playing""#), "{dom}");

    let png = dir.join("overlay.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    let (u, p) = (url, profile.path().to_owned());
    app.stepping("chromium --screenshot", move || chromium(&u, &p, &shot));
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
}

#[test]
fn the_overlay_page_needs_the_key_loads_nothing_else_and_allows_no_other_origin() {
    let mut app = ApiApp::start(playing_env(), RateLimit::default());
    let url = app.url.clone();
    let key = app.key.clone();
    let (status, headers, body) = app.stepping("GET /overlay", move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into();
        let get = |path: &str| {
            let mut r = agent
                .get(&format!("{url}{path}"))
                .header("Origin", "http://evil.example")
                .call()
                .expect("GET");
            let headers: Vec<(String, String)> = r
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            (
                r.status().as_u16(),
                headers,
                r.body_mut().read_to_string().unwrap(),
            )
        };
        assert_eq!(get("/overlay").0, 401);
        assert_eq!(get("/overlay?key=nope").0, 401);
        get(&format!("/overlay?key={key}"))
    });
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header("referrer-policy"), Some("no-referrer"));
    assert!(header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));
    assert!(
        headers
            .iter()
            .all(|(k, _)| !k.starts_with("access-control-")),
        "no CORS: {headers:?}"
    );
    assert!(
        !body.contains(&app.key),
        "the key is not written into the page"
    );
    for external in ["http:", "https:", "src=", "href=", "@import", "url("] {
        assert!(
            !body.contains(external),
            "the page loads something: {external}"
        );
    }
}
