//! Tools a test needs from the machine. A missing one fails the test with the reason and the
//! package to install: a test that passes without running proves nothing, in CI least of all.
//! `scripts/deps --test` installs every one of them.

use std::process::{Command, Stdio};

/// Fails the calling test unless every `(program, Debian package)` is on `PATH`.
pub fn require(tools: &[(&str, &str)]) {
    let missing: Vec<_> = tools
        .iter()
        .filter(|(program, _)| !installed(program))
        .collect();
    if missing.is_empty() {
        return;
    }
    let programs: Vec<_> = missing.iter().map(|(p, _)| *p).collect();
    let mut packages: Vec<_> = missing.iter().map(|(_, pkg)| *pkg).collect();
    packages.dedup();
    panic!(
        "this test needs {} on PATH; install with `scripts/deps --test` \
         (or apt-get install {})",
        programs.join(", "),
        packages.join(" ")
    );
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub const PULSEAUDIO: (&str, &str) = ("pulseaudio", "pulseaudio");
pub const PACTL: (&str, &str) = ("pactl", "pulseaudio-utils");
pub const PAPLAY: (&str, &str) = ("paplay", "pulseaudio-utils");
pub const PARECORD: (&str, &str) = ("parecord", "pulseaudio-utils");
pub const XVFB: (&str, &str) = ("Xvfb", "xvfb");
pub const XDOTOOL: (&str, &str) = ("xdotool", "xdotool");
pub const IMPORT: (&str, &str) = ("import", "imagemagick");
pub const CHROMIUM: (&str, &str) = ("chromium", "chromium");
/// schemathesis runs from a venv that `scripts/api-fuzz` makes.
pub const PYTHON_VENV: (&str, &str) = ("python3", "python3-venv");
