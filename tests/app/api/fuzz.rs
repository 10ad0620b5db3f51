//! schemathesis (PyPI, pinned in `scripts/api-fuzz`) against the real app core and the
//! simulator: generated and mutated requests for every operation of `/openapi.json` find no
//! 5xx and no answer the document does not describe.

use std::path::Path;
use std::process::Command;

use voxboard::api::RateLimit;

use super::http::playing_env;
use super::support::{ApiApp, text};
use crate::prereq::{self, PYTHON_VENV};

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    prereq::require(&[PYTHON_VENV]);
    // schemathesis sends a few hundred requests as fast as it can: the flood limit is tested
    // elsewhere (http.rs), here it would only turn answers into 429s.
    let unlimited = RateLimit {
        per_second: 1e6,
        burst: 1e6,
    };
    let mut app = ApiApp::start(playing_env(), unlimited);
    // Plays succeed (a real engine and simulator) rather than answering 503 `not_connected`.
    app.wait_ready(100);
    let (url, key) = (app.url.clone(), app.key.clone());
    // A guard against a hang, not a speed check: 380 cases take ~12 s alone and several times
    // that on a machine busy with the rest of the suite.
    let guard = std::time::Duration::from_secs(300);
    let out = app.stepping_for("scripts/api-fuzz", guard, move || {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/api-fuzz"))
            .arg(&url)
            .env("VOXBOARD_API_KEY", &key)
            .env_remove("SCHEMATHESIS_ARGS")
            .output()
            .expect("run scripts/api-fuzz")
    });
    let report = text(&out);
    assert!(
        !report.contains(&app.key),
        "the key is in schemathesis' output"
    );
    println!("{report}");
    assert!(out.status.success(), "schemathesis found problems (above)");
    // The app is still whole after it.
    assert_eq!(app.call("GET", "/v1/status", None).status, 200);
}
