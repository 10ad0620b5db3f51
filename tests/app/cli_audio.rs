//! `voxboard play --mic/--monitor` with a real (virtual) sound card: a PulseAudio null sink whose
//! monitor is the default source (`scripts/pulse-null-sink`). A tone played into the sink must
//! reach the simulator's listener through the microphone; what goes out must come back out of
//! the monitor output. With no sound server at all, `play` still works and says so.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::sink;

use voxboard_audio::analysis::dominant_frequency;

fn voxboard(dir: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .output()
        .expect("run voxboard")
}

fn background(dir: &str, program: &Path, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// Parses "dominant frequency N Hz" from `play --sim`'s report.
fn reported_frequency(stdout: &str) -> Option<f32> {
    let at = stdout.find("dominant frequency ")? + "dominant frequency ".len();
    stdout[at..].split_whitespace().next()?.parse().ok()
}

#[test]
fn microphone_tone_reaches_the_listener() {
    let _turn = sink::take_turn();
    let dir = sink::start();
    let mut tone = background(&dir, &sink::script(), &["play-tone", "523", "9"]);
    let out = voxboard(
        &dir,
        &[
            "play",
            "--sim",
            "--mic",
            "--duration",
            "5",
            "--join",
            "100:1002",
        ],
    );
    let _ = tone.kill();
    let _ = tone.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("microphone: "), "{stdout}");
    let f = reported_frequency(&stdout).unwrap_or_else(|| panic!("no frequency in:\n{stdout}"));
    assert!((f - 523.0).abs() <= 3.0, "listener heard {f} Hz:\n{stdout}");
    assert!(stdout.contains("no protocol violations"), "{stdout}");
}

#[test]
fn monitor_output_carries_what_goes_out() {
    let _turn = sink::take_turn();
    let dir = sink::start();
    let tmp = tempfile::tempdir().unwrap();
    let tone = tmp.path().join("tone700.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&tone, spec).unwrap();
    for i in 0..48_000 * 3 {
        let s = 0.4 * (i as f32 * 700.0 * std::f32::consts::TAU / 48_000.0).sin();
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();

    let recorded = tmp.path().join("monitor.wav");
    let recorded_arg = recorded.to_str().unwrap();
    let parecord = Path::new("parecord");
    let mut rec = background(
        &dir,
        parecord,
        &[
            "--device=virtmic.monitor",
            "--latency-msec=20",
            "--file-format=wav",
            recorded_arg,
        ],
    );
    let out = voxboard(
        &dir,
        &[
            "play",
            "--sim",
            "--monitor",
            "--join",
            "100:1002",
            tone.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    // SIGINT lets parecord finish the WAV header.
    let _ = Command::new("kill")
        .args(["-INT", &rec.id().to_string()])
        .status();
    let _ = rec.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("monitor: "), "{stdout}");

    let mut reader = hound::WavReader::open(&recorded).expect("parecord wrote a wav");
    let spec = reader.spec();
    let channels = spec.channels as usize;
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .filter_map(Result::ok)
        .map(|s| s as f32 / 32768.0)
        .collect();
    let mono: Vec<f32> = samples
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect();
    // Keep the loud part: the tone, not the silence around it.
    let loud: Vec<f32> = mono
        .chunks(480)
        .filter(|c| c.iter().any(|s| s.abs() > 0.1))
        .flatten()
        .copied()
        .collect();
    assert!(
        loud.len() > spec.sample_rate as usize,
        "the monitor played too little: {} samples",
        loud.len()
    );
    let f = dominant_frequency(&loud, spec.sample_rate, 100.0, 5_000.0);
    assert!((f - 700.0).abs() <= 3.0, "monitor carried {f} Hz");
}

#[test]
fn no_sound_server_is_a_normal_state() {
    let f = voxboard_testkit::fixture();
    let out = Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args([
            "play",
            "--sim",
            "--mic",
            "--monitor",
            "--join",
            "100:1002",
            f.tones.to_str().unwrap(),
        ])
        .env("XDG_RUNTIME_DIR", "/nonexistent")
        .env("PULSE_SERVER", "unix:/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Said once each, plainly, and the run goes on without them.
    assert!(stdout.contains("no microphone: "), "{stdout}");
    assert!(stdout.contains("no monitor output: "), "{stdout}");
    assert!(
        stdout.contains("heard 150 audio frames"),
        "the files still play:\n{stdout}"
    );
}
