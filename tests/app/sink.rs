//! The PulseAudio null sink the sound-device tests share (`scripts/pulse-null-sink`): its
//! monitor is the default source, so what is played into it comes back as the microphone.

use std::path::PathBuf;
use std::process::{Command, Stdio};
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
