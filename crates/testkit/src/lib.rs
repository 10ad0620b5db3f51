//! What the tests of several crates share: test signals, the simulator's guild ids, and checks
//! of what its listeners heard. A dev-dependency only; nothing here ships.

use std::path::{Path, PathBuf};

use voxboard_audio::analysis::tone_segments;
use voxboard_sim::{SimConfig, Simulator};

pub const TONES: [f32; 3] = [440.0, 660.0, 880.0];

/// Writes the three-tone test file: 1 s each of 440, 660 and 880 Hz, 44.1 kHz mono 16-bit.
pub fn write_three_tones(path: &Path) {
    write_tones(path, &TONES.map(|f| (f, 1.0)));
}

/// Writes sines of `(frequency Hz, seconds)` one after another at amplitude 0.5, as a 44.1 kHz
/// mono 16-bit wav.
pub fn write_tones(path: &Path, tones: &[(f32, f32)]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for &(freq, secs) in tones {
        for i in 0..(44_100.0 * secs) as usize {
            let t = i as f32 / 44_100.0;
            let s = 0.5 * (2.0 * std::f32::consts::PI * freq * t).sin();
            w.write_sample((s * 32767.0) as i16).expect("write sample");
        }
    }
    w.finalize().expect("finalize wav");
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub tones: PathBuf,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let tones = dir.path().join("three-tones.wav");
    write_three_tones(&tones);
    Fixture { dir, tones }
}

/// The voice channel id `SimConfig::with_guilds` gives guild index `i`.
pub fn voice_channel(i: usize) -> u64 {
    1000 * (i as u64 + 1) + 2
}

pub fn guild(i: usize) -> u64 {
    100 + i as u64
}

/// The tones heard, in order, with how long each lasted (seconds).
pub fn heard_tones(sim: &Simulator, guild_id: u64) -> Vec<(f32, f32)> {
    let pcm = sim.heard(guild_id).pcm_mono();
    tone_segments(&pcm, 48_000, &TONES, 0.02)
        .into_iter()
        .map(|(f, start, end)| (f, end - start))
        .filter(|&(_, len)| len >= 0.1)
        .collect()
}

/// Asserts the three tones were heard in order, each lasting `min..=max` seconds.
pub fn assert_three_tones(sim: &Simulator, guild_id: u64, min: f32, max: f32) {
    let tones = heard_tones(sim, guild_id);
    let freqs: Vec<f32> = tones.iter().map(|t| t.0).collect();
    assert_eq!(
        freqs,
        TONES.to_vec(),
        "guild {guild_id}: tones heard {tones:?}"
    );
    for (f, len) in tones {
        assert!(
            (min..=max).contains(&len),
            "guild {guild_id}: {f} Hz lasted {len:.3} s, expected {min}..={max}"
        );
    }
}

pub fn assert_no_violations(sim: &Simulator) {
    let v = sim.violations();
    assert!(v.is_empty(), "protocol violations: {v:#?}");
}

/// A sine of `freq` Hz at amplitude `amp`, `seconds` long, as 48 kHz stereo samples.
pub fn sine_clip(freq: f32, amp: f32, seconds: f32) -> std::sync::Arc<[f32]> {
    let n = (seconds * 48_000.0) as usize;
    (0..n)
        .flat_map(|i| {
            let s = amp * (i as f32 * freq * std::f32::consts::TAU / 48_000.0).sin();
            [s, s]
        })
        .collect()
}

/// A simulator serving both gateways over TLS with a fresh self-signed certificate for
/// 127.0.0.1, and that certificate.
pub fn tls_sim() -> (Simulator, voxboard_sim::SelfSignedCert) {
    let mut config = SimConfig::with_guilds(1);
    let cert = config.serve_self_signed_tls().expect("self-signed TLS");
    (Simulator::start(config).unwrap(), cert)
}
