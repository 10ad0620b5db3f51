//! Real microphone capture and monitor playback through a PulseAudio null sink
//! (`scripts/pulse-null-sink`): a tone played into the sink must come out of
//! `Microphone` at the same pitch, and the monitor's output must come back through the sink's
//! monitor source.
//!
//! Each audio test runs in a child process of this test binary (the `child_*` tests, ignored
//! in normal runs), so that the child can get `XDG_RUNTIME_DIR`/`PULSE_SERVER` without
//! touching this process's environment, and so that alsa-lib's stderr noise stays there.
//! Tests that use the shared sink take turns (`sink::take_turn`) so that their tones never mix.

use std::process::{Child, Command, Stdio};
use std::thread::sleep;

use crate::sink;
use std::time::{Duration, Instant};

use voxboard_audio::analysis::{channel, dominant_frequency, peak, rms};
use voxboard_audio::capture::{MicReader, MicStatus, Microphone};
use voxboard_audio::devices::{AudioDeviceError, list_devices};
use voxboard_audio::monitor::Monitor;
use voxboard_audio::{FRAME_LEN, SAMPLE_RATE};

/// Enough audio for a sub-Hz pitch estimate: 0.5 s.
const WANTED_FRAMES: usize = 25;
/// How long to wait for that much audio (PulseAudio takes ~1.7 s to start a capture).
const DATA_TIMEOUT: Duration = Duration::from_secs(6);

fn run_child(name: &str, env: &[(&str, &str)]) {
    sink::run_child(module_path!(), name, env);
}

fn in_child() -> bool {
    sink::in_child()
}

/// Plays a tone into the null sink until dropped.
struct Tone(Child);

impl Tone {
    fn play(freq: u32, seconds: u32) -> Tone {
        let child = Command::new(sink::script())
            .args(["play-tone", &freq.to_string(), &seconds.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .expect("run pulse-null-sink play-tone");
        Tone(child)
    }
}

impl Drop for Tone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads frames until `WANTED_FRAMES` consecutive frames with sound arrived (calling `feed`
/// before every read, for tests that also play), or the timeout passes. Returns the audio.
fn capture(reader: &mut MicReader, mut feed: impl FnMut()) -> Vec<f32> {
    let started = Instant::now();
    let mut audio = Vec::new();
    let mut frame = [0.0f32; FRAME_LEN];
    while audio.len() < WANTED_FRAMES * FRAME_LEN && started.elapsed() < DATA_TIMEOUT {
        feed();
        if !reader.read_frame(&mut frame) {
            sleep(Duration::from_millis(5));
            continue;
        }
        if peak(&frame) > 0.05 {
            audio.extend_from_slice(&frame);
        } else {
            audio.clear(); // silence before the tone starts (or a gap): start over
        }
    }
    println!(
        "captured {} frames in {:.2} s ({} callbacks, {} underruns, {} dropped samples, status {:?})",
        audio.len() / FRAME_LEN,
        started.elapsed().as_secs_f32(),
        reader.callbacks(),
        reader.underruns(),
        reader.dropped_samples(),
        reader.status()
    );
    audio
}

fn assert_tone(audio: &[f32], freq: f32, what: &str) {
    assert!(
        audio.len() >= WANTED_FRAMES * FRAME_LEN,
        "{what}: only {} frames of audio arrived within {DATA_TIMEOUT:?}",
        audio.len() / FRAME_LEN
    );
    for side in 0..2 {
        let mono = channel(audio, 2, side);
        let found = dominant_frequency(&mono, SAMPLE_RATE, 100.0, 4000.0);
        let level = rms(&mono);
        println!("{what}, channel {side}: {found:.2} Hz, rms {level:.3}");
        assert!(
            (found - freq).abs() <= 3.0,
            "{what}: expected {freq} Hz, heard {found} Hz"
        );
        // A 0.5-amplitude sine has rms 0.354.
        assert!(
            (0.2..0.5).contains(&level),
            "{what}: odd level, rms {level}"
        );
    }
}

#[test]
fn microphone_hears_a_tone_played_into_the_sink() {
    let _sink = sink::take_turn();
    let dir = sink::start();
    run_child("child_microphone_tone", &[("XDG_RUNTIME_DIR", &dir)]);
}

#[test]
#[ignore = "runs in a child process started by microphone_hears_a_tone_played_into_the_sink"]
fn child_microphone_tone() {
    if !in_child() {
        return;
    }
    let _tone = Tone::play(523, 20);
    let mut mic = Microphone::open(None).expect("open the default microphone");
    println!(
        "microphone: {} ({})",
        mic.device_name(),
        mic.device_config()
    );
    let mut reader = mic.take_reader().expect("reader");
    let audio = capture(&mut reader, || {});
    assert_tone(&audio, 523.0, "microphone");
    assert!(
        (0.3..0.7).contains(&reader.level()),
        "meter level {}",
        reader.level()
    );
    assert_eq!(mic.status(), MicStatus::Running);

    // Reopening swaps the stream under the same reader.
    mic.reopen().expect("reopen the microphone");
    let audio = capture(&mut reader, || {});
    assert_tone(&audio, 523.0, "microphone after reopen");
    println!("stream errors: {}", mic.stream_errors());
}

#[test]
fn monitor_output_comes_back_through_the_sink() {
    let _sink = sink::take_turn();
    let dir = sink::start();
    run_child("child_monitor_loopback", &[("XDG_RUNTIME_DIR", &dir)]);
}

#[test]
#[ignore = "runs in a child process started by monitor_output_comes_back_through_the_sink"]
fn child_monitor_loopback() {
    if !in_child() {
        return;
    }
    let mut monitor = Monitor::open(None).expect("open the default output");
    println!(
        "monitor: {} ({})",
        monitor.device_name(),
        monitor.device_config()
    );
    let mut writer = monitor.take_writer().expect("writer");
    let mut mic = Microphone::open(None).expect("open the default microphone");
    let mut reader = mic.take_reader().expect("reader");

    let step = 2.0 * std::f64::consts::PI * 700.0 / f64::from(SAMPLE_RATE);
    let mut phase = 0.0f64;
    let mut frame = [0.0f32; FRAME_LEN];
    let mut tone = |writer: &mut voxboard_audio::monitor::MonitorWriter| {
        // Keep about 60 ms queued: the device takes it at its own pace.
        while writer.queued() < 3 * FRAME_LEN {
            for pair in frame.chunks_exact_mut(2) {
                let s = (0.5 * phase.sin()) as f32;
                pair.copy_from_slice(&[s, s]);
                phase = (phase + step) % (2.0 * std::f64::consts::PI);
            }
            assert!(writer.push_frame(&frame));
        }
    };
    let audio = capture(&mut reader, || tone(&mut writer));
    println!(
        "monitor: {} callbacks, {} underruns, {} stream errors",
        monitor.callbacks(),
        monitor.underruns(),
        monitor.stream_errors()
    );
    assert_tone(&audio, 700.0, "monitor loopback");

    // Volume 0 silences the monitor.
    monitor.set_volume(0.0);
    let started = Instant::now();
    let mut quiet = false;
    let mut buf = [0.0f32; FRAME_LEN];
    while !quiet && started.elapsed() < DATA_TIMEOUT {
        tone(&mut writer);
        if reader.read_frame(&mut buf) {
            quiet = peak(&buf) < 0.01;
        } else {
            sleep(Duration::from_millis(5));
        }
    }
    assert!(quiet, "still hearing the monitor at volume 0");
}

#[test]
fn devices_are_listed_and_ids_open() {
    let _sink = sink::take_turn();
    let dir = sink::start();
    run_child("child_list_devices", &[("XDG_RUNTIME_DIR", &dir)]);
}

#[test]
#[ignore = "runs in a child process started by devices_are_listed_and_ids_open"]
fn child_list_devices() {
    if !in_child() {
        return;
    }
    let list = list_devices();
    println!("{list:#?}");
    let input = list.default_input.clone().expect("a default input");
    let output = list.default_output.clone().expect("a default output");
    assert!(
        list.inputs
            .iter()
            .any(|d| d.id == input && d.default_config.is_some())
    );
    assert!(
        list.outputs
            .iter()
            .any(|d| d.id == output && d.default_config.is_some())
    );
    assert!(
        list.inputs
            .iter()
            .chain(&list.outputs)
            .any(|d| d.name.to_lowercase().contains("virtmic")
                || d.id.contains("pulse")
                || d.name.to_lowercase().contains("pulse")),
        "no PulseAudio device listed"
    );
    // Ids round-trip into open.
    let mic = Microphone::open(Some(&input)).expect("open the default input by id");
    assert_eq!(mic.status(), MicStatus::Running);
    Monitor::open(Some(&output)).expect("open the default output by id");
    let err = Microphone::open(Some("no-such-device")).expect_err("unknown device");
    assert!(matches!(err, AudioDeviceError::NoDevice(_)), "{err}");
    println!("unknown device: {err}");
}

#[test]
fn no_audio_system_gives_errors_not_panics() {
    // Needs no PulseAudio: the point is that there is none to talk to.
    let _sink = sink::take_turn();
    run_child("child_no_audio_system", &[("PULSE_SERVER", "/nonexistent")]);
}

#[test]
#[ignore = "runs in a child process started by no_audio_system_gives_errors_not_panics"]
fn child_no_audio_system() {
    if !in_child() {
        return;
    }
    let list = list_devices();
    println!("{list:#?}");
    assert_eq!(list.default_input, None, "default input without a server");
    assert_eq!(list.default_output, None, "default output without a server");
    let mic = Microphone::open(None).expect_err("a microphone without a server");
    println!("microphone: {mic}");
    let monitor = Monitor::open(None).expect_err("an output without a server");
    println!("monitor: {monitor}");
}

fn with_private_daemon(name: &str) {
    sink::with_private_daemon(module_path!(), name);
}

#[test]
fn losing_the_audio_server_marks_the_microphone_lost() {
    with_private_daemon("child_server_loss");
}

/// A streamer restarting PulseAudio mid-stream must not have to touch the settings: the app's
/// device thread notices that the microphone and the monitor are lost and brings both back.
#[test]
fn the_app_reopens_both_devices_after_the_server_restarts() {
    with_private_daemon("child_server_restart");
}

#[test]
#[ignore = "runs in a child process started by the_app_reopens_both_devices_after_the_server_restarts"]
fn child_server_restart() {
    use voxboard::ui::audio_devices::{AudioDevices, DeviceState};
    use voxboard_voice::engine::{Command as EngineCommand, EngineMsg};
    if !in_child() {
        return;
    }
    let devices = AudioDevices::spawn(std::sync::Arc::new(|| {}));
    let (engine, inbox) = std::sync::mpsc::channel();
    devices.attach(engine, None, None, true);
    let wait_for = |what: &str, ok: &dyn Fn(&DeviceState) -> bool| {
        let started = Instant::now();
        loop {
            let s = devices.snapshot();
            if ok(&s) {
                println!(
                    "{what} after {:.2} s: mic {:?}, monitor {:?}",
                    started.elapsed().as_secs_f32(),
                    s.mic,
                    s.monitor
                );
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "{what}: {s:?}");
            sleep(Duration::from_millis(20));
        }
    };
    let running = |s: &DeviceState| s.mic_ok && !s.monitor.is_empty() && !s.monitor.contains(':');
    wait_for("both open", &running);
    // Long enough for both streams to deliver callbacks (the stall watch starts then).
    sleep(Duration::from_secs(2));
    let stop = Command::new(sink::script())
        .arg("stop")
        .status()
        .expect("stop");
    assert!(stop.success());
    wait_for("both lost", &|s| {
        s.mic.starts_with("microphone lost") && s.monitor.starts_with("monitor lost")
    });
    let start = Command::new(sink::script())
        .arg("start")
        .stdout(Stdio::null())
        .status()
        .expect("start");
    assert!(start.success());
    wait_for("both back", &running);
    // They stay up: the stall watch sees their callbacks again.
    sleep(Duration::from_secs(3));
    let s = devices.snapshot();
    assert!(running(&s), "lost again: {s:?}");
    let monitors = inbox
        .try_iter()
        .filter(|m| {
            matches!(
                m,
                EngineMsg::Command(EngineCommand::SetMonitorSink(Some(_)))
            )
        })
        .count();
    assert_eq!(
        monitors, 2,
        "the engine got the first monitor and its replacement"
    );
}

#[test]
#[ignore = "runs in a child process started by losing_the_audio_server_marks_the_microphone_lost"]
fn child_server_loss() {
    if !in_child() {
        return;
    }
    let mut mic = Microphone::open(None).expect("open the default microphone");
    let mut reader = mic.take_reader().expect("reader");
    let mut monitor = Monitor::open(None).expect("open the default output");
    let mut frame = [0.0f32; FRAME_LEN];
    let started = Instant::now();
    while (reader.callbacks() < 5 || monitor.callbacks() < 5) && started.elapsed() < DATA_TIMEOUT {
        reader.read_frame(&mut frame);
        sleep(Duration::from_millis(10));
    }
    assert!(reader.callbacks() >= 5, "the microphone never started");
    assert!(monitor.callbacks() >= 5, "the monitor never started");
    let stop = Command::new(sink::script())
        .arg("stop")
        .status()
        .expect("stop");
    assert!(stop.success());
    // ALSA's pulse plugin reports nothing: the stall detector must notice.
    let started = Instant::now();
    while reader.status() == MicStatus::Running && started.elapsed() < DATA_TIMEOUT {
        reader.read_frame(&mut frame);
        sleep(Duration::from_millis(10));
    }
    println!(
        "status {:?} after {:.2} s",
        reader.status(),
        started.elapsed().as_secs_f32()
    );
    assert!(matches!(reader.status(), MicStatus::Lost { .. }));
    // The monitor's callbacks stopped too; its watcher says so.
    while monitor.check() == MicStatus::Running && started.elapsed() < DATA_TIMEOUT {
        sleep(Duration::from_millis(10));
    }
    println!("monitor status {:?}", monitor.status());
    assert!(matches!(monitor.check(), MicStatus::Lost { .. }));
    // Neither a reopen nor dropping the microphone or the monitor may hang now (the parent
    // gives this child a deadline).
    let err = mic.reopen().expect_err("no server to reopen on");
    println!("reopen: {err}; status {:?}", mic.status());
    assert_ne!(mic.status(), MicStatus::Running);
    drop(mic);
    drop(monitor);
    let err = Monitor::open(None).expect_err("no server to open an output on");
    println!("monitor reopen: {err}");
}
