//! The PulseAudio null sink the sound-device tests share (`scripts/pulse-null-sink`): its
//! monitor is the default source, so what is played into it comes back as the microphone.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Set in the child processes of [`run_child`].
const CHILD: &str = "VOXBOARD_AUDIO_TEST_CHILD";
use std::sync::{Mutex, MutexGuard};

use crate::prereq::{self, PACTL, PAPLAY, PARECORD, PULSEAUDIO};

/// Tests that use a sound server take turns: they share the sink and its default devices.
pub fn take_turn() -> MutexGuard<'static, ()> {
    static SINK: Mutex<()> = Mutex::new(());
    SINK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pulse-null-sink")
}

/// Starts (or reuses) the shared null sink and returns the `XDG_RUNTIME_DIR` clients must use.
pub fn start() -> String {
    start_in(None)
}

/// Starts a daemon with a null sink in `dir` (a private one a test may kill), or the shared one.
pub fn start_in(dir: Option<&str>) -> String {
    prereq::require(&[PULSEAUDIO, PACTL, PAPLAY, PARECORD, ("sox", "sox")]);
    let mut cmd = Command::new(script());
    if let Some(dir) = dir {
        cmd.env("VOXBOARD_PULSE_DIR", dir);
    }
    let out = cmd
        .arg("start")
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/pulse-null-sink");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pulse-null-sink start failed: {stderr}"
    );
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !dir.is_empty(),
        "pulse-null-sink printed no directory; stderr: {stderr}"
    );
    dir
}

/// Stops the daemon in `dir` and removes the directory.
pub fn stop_private(dir: &str) {
    let _ = Command::new(script())
        .arg("stop")
        .env("VOXBOARD_PULSE_DIR", dir)
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the ignored test `name` of the module `module_path` (its `module_path!()`) in a child
/// process with extra environment variables, so the child can get `XDG_RUNTIME_DIR` without
/// touching this process's environment; fails if it fails, did not run, or hung (coreutils'
/// `timeout` kills it after two minutes).
pub fn run_child(module_path: &str, name: &str, env: &[(&str, &str)]) {
    // Test names are module paths inside this binary.
    let module = module_path.split_once("::").map_or("", |(_, m)| m);
    let name = &format!("{module}::{name}");
    let out = Command::new("timeout")
        .args(["--kill-after=5", "120"])
        .arg(std::env::current_exe().expect("test binary path"))
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {name} stdout ---\n{stdout}--- {name} stderr ---\n{stderr}");
    assert!(out.status.success(), "{name} failed (output above)");
    assert!(stdout.contains("1 passed"), "{name} did not run");
}

/// Whether this is a child started by [`run_child`] (an ignored child test run directly
/// returns at once: it has no sound server to talk to).
pub fn in_child() -> bool {
    let yes = std::env::var_os(CHILD).is_some();
    if !yes {
        println!("not run directly: its parent test starts it in a child process");
    }
    yes
}

/// Runs the child test `name` of `module_path` against a private PulseAudio daemon (which it
/// may kill and restart, and whose sink no other test plays into).
pub fn with_private_daemon(module_path: &str, name: &str) {
    let _sink = take_turn();
    let private = std::env::temp_dir().join(format!("voxboard-{name}-{}", std::process::id()));
    let private = private.to_str().expect("utf-8 temp dir").to_string();
    start_in(Some(&private));
    // Stopped even when the child fails: a leaked daemon would outlive the test run.
    struct Stop<'a>(&'a str);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            stop_private(self.0);
        }
    }
    let _stop = Stop(&private);
    run_child(
        module_path,
        name,
        &[
            ("XDG_RUNTIME_DIR", &private),
            ("VOXBOARD_PULSE_DIR", &private),
        ],
    );
}
