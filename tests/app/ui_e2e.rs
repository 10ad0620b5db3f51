//! End to end, as a person: `scripts/e2e-gui` runs the demo app in a real window under Xvfb,
//! clicks a sound with xdotool, screenshots the window to `target/screenshots/main.png` (and the
//! edit dialog with its waveform to `edit-dialog.png`) and checks that the simulated listeners
//! heard it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::prereq::{self, IMPORT, PACTL, PAPLAY, PULSEAUDIO, XDOTOOL, XVFB};

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

#[test]
fn the_demo_window_plays_a_clicked_sound() {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    prereq::require(&[XVFB, XDOTOOL, IMPORT]);
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e-gui"))
        .env("VOXBOARD_BIN", env!("CARGO_BIN_EXE_voxboard"))
        .env("SCREENSHOT_DIR", &dir)
        .output()
        .expect("run scripts/e2e-gui");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "scripts/e2e-gui failed");
    assert!(dir.join("main.png").is_file(), "no screenshot written");
    assert!(
        dir.join("edit-dialog.png").is_file(),
        "no screenshot of the edit dialog written"
    );
    assert!(!stdout.contains(voxboard_sim::SimConfig::TEST_TOKEN));
}

/// A global hotkey sent with xdotool plays a sound, and push-to-talk held with the mouse passes
/// a 523 Hz tone from a PulseAudio null-sink microphone to the simulated listeners.
#[test]
fn hotkey_and_push_to_talk_in_a_real_window() {
    prereq::require(&[XVFB, XDOTOOL, PULSEAUDIO, PACTL, PAPLAY]);
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/e2e-gui-input"))
        .env("VOXBOARD_BIN", env!("CARGO_BIN_EXE_voxboard"))
        .output()
        .expect("run scripts/e2e-gui-input");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/e2e-gui-input failed");
    assert!(stdout.contains("push-to-talk passed"));
}
