//! Sound shaping as the simulator's listener hears it, through the real app core and engine:
//! choke groups, trim and fades, loudness normalisation (from the app and from `play`).

use std::time::Duration;

use egui_kittest::Harness;
use voxboard::ui::VoxApp;
use voxboard_audio::analysis::{goertzel_power, rms};
use voxboard_audio::loudness::integrated_lufs;
use voxboard_sim::Simulator;

use crate::ui_support::{Env, board_with, step_until};

const RATE: u32 = 48_000;
/// 100 ms: a whole number of periods of every tone used here, so Goertzel sees no leakage.
const WINDOW: usize = 4_800;

/// The app joined to guild 100 of its simulator, its sounds (440 Hz, 660 Hz, ...) not
/// normalised so that levels at the listener are the files' own.
fn ready_app(env: &Env) -> Harness<'static, VoxApp> {
    env.harness_joined(100)
}

fn board_env(names: &[&str], secs: f32, edit: impl Fn(&mut voxboard::board::Sound)) -> Env {
    Env::new(
        |dir| {
            let mut b = board_with(dir, names, secs);
            b.settings.connections.insert(100, 1002);
            for s in b.tabs.iter_mut().flat_map(|t| t.sounds.iter_mut()) {
                s.normalise = false;
                edit(s);
            }
            b
        },
        true,
    )
}

fn sound_ids(h: &Harness<'static, VoxApp>) -> Vec<u64> {
    h.state().core.board.tabs[0]
        .sounds
        .iter()
        .map(|s| s.id)
        .collect()
}

/// Steps the app until nothing plays any more.
fn until_silent(h: &mut Harness<'static, VoxApp>, ids: &[u64]) {
    step_until(h, Duration::from_secs(20), "every sound ended", |h| {
        ids.iter().all(|id| h.state().core.progress(*id).is_none())
    });
}

/// Power of `freq` in each 100 ms window of what guild 100's listener heard.
fn tone_power(sim: &Simulator, freq: f32) -> Vec<f32> {
    sim.heard(100)
        .pcm_mono()
        .chunks_exact(WINDOW)
        .map(|w| goertzel_power(w, RATE, freq))
        .collect()
}

#[test]
fn a_choke_group_stops_the_playing_sound_when_the_next_starts() {
    let env = board_env(&["Bed A", "Bed B"], 3.0, |s| s.choke_group = Some(1));
    let sim = env.sim.as_ref().expect("sim");
    let mut h = ready_app(&env);
    let ids = sound_ids(&h);
    h.state_mut().core.play(ids[0]);
    step_until(&mut h, Duration::from_secs(10), "a second of bed A", |_| {
        sim.heard(100).audio_frames() >= 50
    });
    h.state_mut().core.play(ids[1]);
    until_silent(&mut h, &ids);

    // A sine of amplitude 0.5 reads 0.25.
    let present = |p: &f32| *p > 0.01;
    let a = tone_power(sim, 440.0);
    let b = tone_power(sim, 660.0);
    let b_starts = b.iter().position(present).expect("bed B was heard");
    let a_windows = a.iter().filter(|p| present(p)).count();
    let b_windows = b.iter().filter(|p| present(p)).count();
    assert!(
        (9..25).contains(&a_windows),
        "bed A played {a_windows} windows: cut short, after its first second"
    );
    assert!(b_windows >= 29, "bed B played whole: {b_windows} windows");
    // From the window after the one where B starts (it holds the 10 ms fade), A is gone.
    for (i, (pa, pb)) in a.iter().zip(&b).enumerate().skip(b_starts + 1) {
        assert!(
            *pa < 1e-4,
            "window {i}: bed A still sounds ({pa:.5}) under bed B ({pb:.5})"
        );
    }
    voxboard_testkit::assert_no_violations(sim);
}

/// What a 3 s tone trimmed to 0.5..1.5 s with 0.3 s fades must sound like at the listener:
/// 1 s long, its first and last 20 ms far quieter than its middle.
fn assert_trimmed_and_faded(sim: &Simulator) {
    let frames = sim.heard(100).audio_frames();
    assert!(
        (49..=51).contains(&frames),
        "heard {frames} frames of 20 ms, expected the 1 s window"
    );
    let pcm = sim.heard(100).pcm_mono();
    let ms20 = RATE as usize / 50;
    let first = rms(&pcm[..ms20]);
    let middle = rms(&pcm[pcm.len() / 2 - ms20 / 2..][..ms20]);
    let last = rms(&pcm[pcm.len() - ms20..]);
    assert!(middle > 0.3, "the middle is at full level: rms {middle}");
    assert!(
        first < 0.1 * middle && last < 0.1 * middle,
        "fades: first 20 ms rms {first}, middle {middle}, last {last}"
    );
    voxboard_testkit::assert_no_violations(sim);
}

const TRIM: [(&str, &str); 4] = [
    ("--start", "0.5"),
    ("--end", "1.5"),
    ("--fade-in", "0.3"),
    ("--fade-out", "0.3"),
];

#[test]
fn a_trimmed_faded_sound_plays_its_window_through_its_fades() {
    let env = board_env(&["Tone"], 3.0, |s| {
        s.trim_start = 0.5;
        s.trim_end = Some(1.5);
        s.fade_in = 0.3;
        s.fade_out = 0.3;
    });
    let mut h = ready_app(&env);
    let ids = sound_ids(&h);
    h.state_mut().core.play(ids[0]);
    step_until(&mut h, Duration::from_secs(10), "it starts", |h| {
        h.state().core.progress(ids[0]).is_some()
    });
    until_silent(&mut h, &ids);
    assert_trimmed_and_faded(env.sim.as_ref().expect("sim"));
}

#[test]
fn play_trims_and_fades_from_the_command_line() {
    let sim = Simulator::start(voxboard_sim::SimConfig::with_guilds(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tone = dir.path().join("tone.wav");
    crate::ui_support::write_tone(&tone, 440.0, 3.0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args([
            "play",
            "--gateway",
            &sim.gateway_url(),
            "--join",
            "100:1002",
        ])
        .args(TRIM.iter().flat_map(|(flag, v)| [*flag, *v]))
        .arg(&tone)
        .env("DISCORD_TOKEN", voxboard_sim::SimConfig::TEST_TOKEN)
        .output()
        .expect("run voxboard");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(3.00 s, playing 1.00 s of it)"),
        "{stdout}"
    );
    assert_trimmed_and_faded(&sim);
}

/// Writes `secs` of a sine at `freq` Hz and peak `amp`, 48 kHz mono 16-bit.
fn write_sine(path: &std::path::Path, freq: f32, amp: f32, secs: f32) {
    write_sines(path, freq, &[(amp, secs)]);
}

/// Writes a sine at `freq` Hz whose peak steps through `(amp, secs)` segments.
fn write_sines(path: &std::path::Path, freq: f32, segments: &[(f32, f32)]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let mut i = 0usize;
    for &(amp, secs) in segments {
        for _ in 0..(secs * RATE as f32) as usize {
            let s = amp * (i as f32 * freq * std::f32::consts::TAU / RATE as f32).sin();
            w.write_sample((s * 32767.0) as i16).expect("write");
            i += 1;
        }
    }
    w.finalize().expect("finalize");
}

#[test]
fn play_normalize_brings_clips_20_lu_apart_to_the_target() {
    const TARGET: f64 = -20.0;
    let sim = Simulator::start(voxboard_sim::SimConfig::with_guilds(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (loud, quiet) = (dir.path().join("loud.wav"), dir.path().join("quiet.wav"));
    write_sine(&loud, 440.0, 0.5, 3.0);
    write_sine(&quiet, 660.0, 0.05, 3.0);
    let source: Vec<f64> = [&loud, &quiet]
        .iter()
        .map(|p| {
            let clip = voxboard_audio::decode::decode_file(p, &mut |_| {}).unwrap();
            integrated_lufs(&clip.samples).unwrap()
        })
        .collect();
    assert!(
        (source[0] - source[1] - 20.0).abs() < 0.5,
        "the sources are 20 LU apart: {source:?}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args([
            "play",
            "--gateway",
            &sim.gateway_url(),
            "--join",
            "100:1002",
        ])
        .args(["--normalize", &TARGET.to_string()])
        .args([&loud, &quiet])
        .env("DISCORD_TOKEN", voxboard_sim::SimConfig::TEST_TOKEN)
        .output()
        .expect("run voxboard");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("towards -20 LUFS"), "{stdout}");

    // What the listener heard, clip by clip (150 frames of 20 ms each, in order).
    let heard = heard_frames(&sim);
    assert_eq!(heard.len(), 300, "both clips whole");
    for (i, clip) in heard.chunks(150).enumerate() {
        let lufs = integrated_lufs(&clip.concat()).expect("measurable");
        println!(
            "clip {i}: {:.2} LUFS at the source, {lufs:.2} at the listener",
            source[i]
        );
        assert!(
            (lufs - TARGET).abs() <= 1.0,
            "clip {i} (source {:.1} LUFS) arrived at {lufs:.2} LUFS, target {TARGET}",
            source[i]
        );
    }
    voxboard_testkit::assert_no_violations(&sim);
}

/// Frames the listener heard, as 20 ms stereo PCM, in order.
fn heard_frames(sim: &Simulator) -> Vec<Vec<f32>> {
    sim.heard(100)
        .frames
        .iter()
        .filter(|f| !f.silence)
        .map(|f| f.pcm.clone())
        .collect()
}

#[test]
fn the_board_normalises_clips_20_lu_apart_to_its_target() {
    const TARGET: f64 = -20.0;
    let env = Env::new(
        |dir| {
            let mut b = voxboard::board::Board::default();
            for (name, freq, amp) in [("loud", 440.0, 0.5), ("quiet", 660.0, 0.05)] {
                let path = dir.join(format!("{name}.wav"));
                write_sine(&path, freq, amp, 3.0);
                b.add_sound(0, path);
            }
            b.settings.loudness_target_lufs = TARGET;
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    );
    let sim = env.sim.as_ref().expect("sim");
    let mut h = ready_app(&env);
    let ids = sound_ids(&h);
    for (n, id) in ids.iter().enumerate() {
        h.state_mut().core.play(*id);
        step_until(
            &mut h,
            Duration::from_secs(10),
            "the clip plays whole",
            |_| heard_frames(sim).len() >= 150 * (n + 1),
        );
        until_silent(&mut h, &ids);
    }
    let heard = heard_frames(sim);
    assert_eq!(heard.len(), 300, "both clips whole");
    for (i, clip) in heard.chunks(150).enumerate() {
        let lufs = integrated_lufs(&clip.concat()).expect("measurable");
        println!("sound {i}: {lufs:.2} LUFS at the listener");
        assert!(
            (lufs - TARGET).abs() <= 1.0,
            "sound {i} arrived at {lufs:.2} LUFS, target {TARGET}"
        );
    }
}

/// A clip with a loud 2 s intro and a 3 s body 20 LU quieter, trimmed to start after the
/// intro: normalisation must follow the window that plays. Measured on the whole clip, the
/// intro would set the gain (a 10 dB cut) and the body would arrive some 16 LU under target.
const INTRO: [(f32, f32); 2] = [(0.5, 2.0), (0.05, 3.0)];

/// The source's loudness: the intro's and the trimmed window's, 20 LU apart.
fn intro_and_body_lufs(path: &std::path::Path) -> (f64, f64) {
    let clip = voxboard_audio::decode::decode_file(path, &mut |_| {}).unwrap();
    let split = 2 * RATE as usize * voxboard_audio::CHANNELS;
    let intro = integrated_lufs(&clip.samples[..split]).unwrap();
    let body = integrated_lufs(&clip.samples[split..]).unwrap();
    assert!(
        (intro - body - 20.0).abs() < 0.5,
        "20 LU apart: {intro} vs {body}"
    );
    println!("source: intro {intro:.2} LUFS, trimmed window {body:.2} LUFS");
    (intro, body)
}

/// The 3 s the listener heard, as LUFS, checked against `target`.
fn assert_window_at_target(sim: &Simulator, target: f64) {
    let heard = heard_frames(sim);
    assert_eq!(heard.len(), 150, "the 3 s window, whole");
    let lufs = integrated_lufs(&heard.concat()).expect("measurable");
    println!("listener: {lufs:.2} LUFS (target {target})");
    assert!(
        (lufs - target).abs() <= 1.0,
        "the trimmed window arrived at {lufs:.2} LUFS, target {target}"
    );
}

#[test]
fn the_board_normalises_the_trimmed_window_not_the_whole_clip() {
    const TARGET: f64 = -20.0;
    let env = Env::new(
        |dir| {
            let mut b = voxboard::board::Board::default();
            let path = dir.join("intro.wav");
            write_sines(&path, 440.0, &INTRO);
            let id = b.add_sound(0, path);
            let s = b.sound_mut(id).expect("sound");
            s.trim_start = 2.0;
            s.normalise = true;
            b.settings.loudness_target_lufs = TARGET;
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    );
    intro_and_body_lufs(&env.dir.path().join("intro.wav"));
    let sim = env.sim.as_ref().expect("sim");
    let mut h = ready_app(&env);
    let ids = sound_ids(&h);
    // Decoded (and measured) before the click, as a board's sounds usually are.
    step_until(&mut h, Duration::from_secs(10), "the clip measured", |h| {
        let core = &h.state().core;
        core.board
            .sound(ids[0])
            .and_then(|s| core.loudness(s))
            .is_some()
    });
    let core = &h.state().core;
    let sound = core.board.sound(ids[0]).expect("sound");
    let shown = core.loudness(sound).and_then(|m| m.lufs).expect("lufs");
    assert!(
        (shown - -26.0).abs() < 1.0,
        "the tile shows the window's {shown} LUFS"
    );
    h.state_mut().core.play(ids[0]);
    step_until(&mut h, Duration::from_secs(10), "the window plays", |_| {
        heard_frames(sim).len() >= 150
    });
    until_silent(&mut h, &ids);
    assert_window_at_target(sim, TARGET);
}

#[test]
fn play_normalize_measures_the_trimmed_window() {
    const TARGET: f64 = -20.0;
    let sim = Simulator::start(voxboard_sim::SimConfig::with_guilds(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("intro.wav");
    write_sines(&path, 440.0, &INTRO);
    intro_and_body_lufs(&path);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args([
            "play",
            "--gateway",
            &sim.gateway_url(),
            "--join",
            "100:1002",
        ])
        .args(["--start", "2", "--normalize", &TARGET.to_string()])
        .arg(&path)
        .env("DISCORD_TOKEN", voxboard_sim::SimConfig::TEST_TOKEN)
        .output()
        .expect("run voxboard");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_window_at_target(&sim, TARGET);
    voxboard_testkit::assert_no_violations(&sim);
}
