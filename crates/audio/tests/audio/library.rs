//! The sound library as the UI and engine use it: lazy decoding, failures that stay on their
//! own button, the memory cap, progress, loudness, and the bundled sounds.
//!
//! No timing assertions: waits are bounded by generous timeouts only so that a bug fails the
//! test instead of hanging it. Speed is measured in `benches/decode.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use voxboard_audio::library::{LibraryConfig, SoundId, SoundLibrary, SoundState};

const WAIT: Duration = Duration::from_secs(120);
/// One 20 ms frame: the tolerance on durations.
const FRAME: Duration = Duration::from_millis(20);

fn library(cap: usize, threads: usize) -> SoundLibrary {
    SoundLibrary::new(LibraryConfig {
        memory_cap_bytes: cap,
        decode_threads: threads,
        ..LibraryConfig::default()
    })
}

/// Writes `seconds` of a sine (peak `amp`) as 16-bit wav with the given rate and channels.
fn wav(dir: &Path, name: &str, seconds: f32, rate: u32, channels: u16, amp: f32) -> PathBuf {
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
    for i in 0..(rate as f32 * seconds) as usize {
        let s = amp * (i as f32 * 1000.0 * std::f32::consts::TAU / rate as f32).sin();
        for _ in 0..channels {
            w.write_sample((s * 32767.0).round() as i16).expect("write");
        }
    }
    w.finalize().expect("finalize wav");
    path
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ready_duration(lib: &SoundLibrary, id: SoundId) -> Duration {
    match lib.state(id) {
        Some(SoundState::Ready { duration, .. }) => duration,
        other => panic!("{id}: {other:?}"),
    }
}

#[test]
fn five_hundred_sounds_register_without_decoding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<PathBuf> = (0..5)
        .map(|i| wav(dir.path(), &format!("s{i}.wav"), 0.2, 48_000, 2, 0.3))
        .collect();
    let lib = library(256 << 20, 2);
    let ids: Vec<SoundId> = (0..500)
        .map(|i| lib.add(files[i % files.len()].clone()))
        .collect();
    assert_eq!(lib.stats().sounds, 500);
    assert_eq!(lib.stats().decodes_started, 0, "add must not decode");
    assert!(
        ids.iter()
            .all(|&id| lib.state(id) == Some(SoundState::Unloaded))
    );
    assert!(
        ids.iter().all(|&id| lib.get(id).is_none()),
        "get never decodes"
    );
    assert_eq!(lib.stats().decodes_started, 0, "get must not decode");

    for &id in &ids[..3] {
        lib.wait_ready(id, WAIT).expect("decodes");
    }
    lib.preload(&ids[3..5]);
    for &id in &ids[3..5] {
        lib.wait_ready(id, WAIT).expect("decodes");
    }
    // Asking again for what is in memory decodes nothing more.
    lib.request(ids[0]);
    lib.preload(&ids[..5]);
    assert_eq!(lib.stats().decodes_started, 5);
    assert_eq!(lib.stats().cached_clips, 5);
    assert_eq!(lib.path(ids[7]).as_deref(), Some(files[2].as_path()));
}

#[test]
fn request_reaches_ready_with_the_right_duration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(256 << 20, 2);
    let mut cases: Vec<(SoundId, Duration, String)> = vec![(
        lib.add(wav(dir.path(), "long.wav", 1.5, 44_100, 1, 0.3)),
        Duration::from_millis(1500),
        "1.5 s wav".to_owned(),
    )];
    for ext in ["wav", "flac", "ogg", "mp3"] {
        let id = lib.add(fixture(&format!("sine1k_44k1_mono.{ext}")));
        cases.push((id, Duration::from_millis(500), ext.to_owned()));
    }
    for &(id, _, _) in &cases {
        lib.request(id);
    }
    for (id, want, what) in &cases {
        let samples = lib.wait_ready(*id, WAIT).unwrap_or_else(|e| panic!("{e}"));
        let samples = samples.samples().cloned().expect("in memory");
        let got = ready_duration(&lib, *id);
        assert!(got.abs_diff(*want) <= FRAME, "{what}: {got:?}");
        // 48 kHz stereo interleaved, agreeing with the state.
        let frames = samples.len() / 2;
        assert_eq!(Duration::from_secs_f64(frames as f64 / 48_000.0), got);
        assert!(
            lib.get(*id)
                .is_some_and(|s| s.samples().is_some_and(|s| Arc::ptr_eq(s, &samples))),
            "{what}"
        );
    }
}

#[test]
fn broken_files_fail_alone_with_a_reason_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_before = wav(dir.path(), "good-before.wav", 0.3, 48_000, 2, 0.3);
    let corrupt = dir.path().join("corrupt.mp3");
    std::fs::write(
        &corrupt,
        (0..4000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("write");
    let header_only = dir.path().join("cut-off.flac");
    let flac = std::fs::read(fixture("sine1k_44k1_mono.flac")).expect("fixture");
    std::fs::write(&header_only, &flac[..60]).expect("write");
    // A well-formed wav holding no audio.
    let empty = wav(dir.path(), "no-audio.wav", 0.0, 48_000, 2, 0.3);
    let zero = dir.path().join("zero-bytes.ogg");
    std::fs::write(&zero, b"").expect("write");
    let missing = dir.path().join("missing.wav");
    let good_after = wav(dir.path(), "good-after.wav", 0.3, 44_100, 1, 0.3);

    let lib = library(256 << 20, 2);
    let bad: Vec<(SoundId, &str)> = [
        (&corrupt, "corrupt.mp3"),
        (&header_only, "cut-off.flac"),
        (&empty, "no-audio.wav"),
        (&zero, "zero-bytes.ogg"),
        (&missing, "missing.wav"),
    ]
    .into_iter()
    .map(|(path, name)| (lib.add(path.clone()), name))
    .collect();
    let before = lib.add(good_before);
    let after = lib.add(good_after);
    lib.request(before);
    for &(id, _) in &bad {
        lib.request(id);
    }
    lib.request(after);

    for &(id, name) in &bad {
        let err = lib.wait_ready(id, WAIT).expect_err(name);
        assert!(err.contains(name), "{name}: {err}");
        match lib.state(id) {
            Some(SoundState::Failed { reason }) => assert_eq!(reason, err, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(lib.get(id).is_none());
        assert_eq!(lib.normalisation_gain(id, -20.0, &Default::default()), None);
        eprintln!("{name}: {err}");
    }
    for id in [before, after] {
        lib.wait_ready(id, WAIT).expect("good files still decode");
        assert!(ready_duration(&lib, id).abs_diff(Duration::from_millis(300)) <= FRAME);
    }
    // A failed sound is not retried on every click; reload retries it.
    let decodes = lib.stats().decodes_started;
    lib.request(bad[4].0);
    assert_eq!(lib.stats().decodes_started, decodes);
    std::fs::copy(fixture("sine1k_44k1_mono.wav"), &missing).expect("copy");
    lib.reload(bad[4].0);
    lib.wait_ready(bad[4].0, WAIT)
        .expect("the file is there now");
}

#[test]
fn small_cap_evicts_least_recently_used_and_request_brings_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 0.5 s of 48 kHz stereo f32 is 192 000 bytes: room for two, not three.
    let lib = library(400_000, 1);
    let ids: Vec<SoundId> = (0..3)
        .map(|i| lib.add(wav(dir.path(), &format!("{i}.wav"), 0.5, 48_000, 2, 0.3)))
        .collect();
    lib.wait_ready(ids[0], WAIT).expect("decodes");
    lib.wait_ready(ids[1], WAIT).expect("decodes");
    assert!(lib.get(ids[0]).is_some(), "0 is now the most recent");
    let held = lib.get(ids[1]).expect("1 is cached");
    assert!(lib.get(ids[0]).is_some());
    lib.wait_ready(ids[2], WAIT).expect("decodes");

    assert!(lib.get(ids[1]).is_none(), "1 was least recently used");
    assert_eq!(lib.state(ids[1]), Some(SoundState::Unloaded));
    assert!(lib.get(ids[0]).is_some() && lib.get(ids[2]).is_some());
    assert_eq!(held.len(), 48_000, "a held clip survives eviction");
    assert!(lib.stats().cached_bytes <= 400_000);

    lib.request(ids[1]);
    lib.wait_ready(ids[1], WAIT).expect("decodes again");
    assert!(lib.get(ids[1]).is_some());
    assert_eq!(lib.stats().decodes_started, 4);
    assert_eq!(lib.stats().evictions, 2);
}

/// A change hook that records what it sees and holds decode threads until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    /// (sound, called on a decode thread, its state at that moment)
    seen: Mutex<Vec<(SoundId, bool, Option<SoundState>)>>,
}

impl Gate {
    fn hook(self: &Arc<Self>, lib: &SoundLibrary) -> Arc<dyn Fn(SoundId) + Send + Sync> {
        let gate = Arc::clone(self);
        let weak = lib.clone();
        Arc::new(move |id| {
            let on_decoder = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("voxboard-decode"));
            let state = weak.state(id);
            gate.seen
                .lock()
                .expect("lock")
                .push((id, on_decoder, state));
            if on_decoder {
                let open = gate.open.lock().expect("lock");
                let _unused = gate
                    .cv
                    .wait_timeout_while(open, WAIT, |open| !*open)
                    .expect("lock");
            }
        })
    }

    fn release(&self) {
        *self.open.lock().expect("lock") = true;
        self.cv.notify_all();
    }
}

#[test]
fn request_returns_while_a_decode_thread_does_the_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(256 << 20, 1);
    let id = lib.add(wav(dir.path(), "long.wav", 10.0, 44_100, 1, 0.3));
    let gate = Arc::new(Gate::default());
    lib.set_on_change(gate.hook(&lib));

    lib.request(id);
    // The decode thread is held in the hook, so if request had decoded on this thread it
    // would be Ready by now (or would never have returned).
    assert!(
        matches!(lib.state(id), Some(SoundState::Decoding { .. })),
        "{:?}",
        lib.state(id)
    );
    assert!(lib.get(id).is_none(), "get does not wait for the decode");
    gate.release();
    lib.wait_ready(id, WAIT).expect("decodes");

    let seen = gate.seen.lock().expect("lock").clone();
    assert!(
        seen.iter().any(|(_, on_decoder, _)| *on_decoder),
        "the decode ran on a decode thread"
    );
    for (_, on_decoder, state) in &seen {
        if let Some(SoundState::Ready { .. }) = state {
            assert!(on_decoder, "Ready was published by a decode thread");
        }
    }
    // Cleared so the library (and its threads) can drop: the hook holds a handle.
    lib.set_on_change(Arc::new(|_| {}));
}

#[test]
fn a_request_overtakes_queued_preloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(256 << 20, 1);
    let path = wav(dir.path(), "s.wav", 0.2, 48_000, 2, 0.3);
    let [busy, x, y, z] = [0; 4].map(|_| lib.add(path.clone()));
    let gate = Arc::new(Gate::default());
    lib.set_on_change(gate.hook(&lib));
    lib.request(busy);
    // Wait (bounded) until the only decode thread has taken `busy` and is held in the hook.
    let deadline = std::time::Instant::now() + WAIT;
    while !gate.seen.lock().expect("lock").iter().any(|(_, d, _)| *d) {
        assert!(
            std::time::Instant::now() < deadline,
            "decode thread never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    lib.preload(&[x, y]);
    lib.request(z);
    gate.release();
    // Watch without `wait_ready`: it requests, and a request would reorder the queue.
    let deadline = std::time::Instant::now() + WAIT;
    while ![busy, x, y, z]
        .iter()
        .all(|&id| matches!(lib.state(id), Some(SoundState::Ready { .. })))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "decodes never finished"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    lib.set_on_change(Arc::new(|_| {}));

    let mut started: Vec<SoundId> = Vec::new();
    for (id, on_decoder, _) in gate.seen.lock().expect("lock").iter() {
        if *on_decoder && !started.contains(id) {
            started.push(*id);
        }
    }
    assert_eq!(started, vec![busy, z, x, y]);
}

#[test]
fn progress_is_reported_while_a_long_file_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(256 << 20, 1);
    let id = lib.add(wav(dir.path(), "long.wav", 30.0, 44_100, 1, 0.3));
    let gate = Arc::new(Gate::default());
    gate.release();
    lib.set_on_change(gate.hook(&lib));
    lib.wait_ready(id, WAIT).expect("decodes");
    lib.set_on_change(Arc::new(|_| {}));

    let progress: Vec<f32> = gate
        .seen
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|(_, _, s)| match s {
            Some(SoundState::Decoding { progress }) => Some(*progress),
            _ => None,
        })
        .collect();
    let between: Vec<f32> = progress
        .iter()
        .copied()
        .filter(|&p| p > 0.0 && p < 1.0)
        .collect();
    assert!(between.len() >= 5, "progress seen: {progress:?}");
    assert!(
        between.windows(2).all(|w| w[0] <= w[1]),
        "progress goes forward: {between:?}"
    );
}

#[test]
fn loudness_of_a_minus_20_dbfs_sine_matches_r128() {
    // 1 kHz at peak 0.1 (-20 dBFS), mono: the library plays it on both sides, and R128 of a
    // sine in both channels is 20·log10(peak) = -20 LUFS (K-weighting at 1 kHz, +0.69 dB, is
    // cancelled by the -0.691 offset). In one channel only it would read 3 dB lower.
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(256 << 20, 1);
    let id = lib.add(wav(dir.path(), "sine.wav", 3.0, 44_100, 1, 0.1));
    assert_eq!(
        lib.normalisation_gain(id, -14.0, &Default::default()),
        None,
        "not measured yet"
    );
    lib.wait_ready(id, WAIT).expect("decodes");
    let Some(SoundState::Ready {
        loudness_lufs: Some(lufs),
        ..
    }) = lib.state(id)
    else {
        panic!("{:?}", lib.state(id));
    };
    assert!((lufs - -20.0).abs() < 0.3, "{lufs} LUFS");
    // To -14 LUFS: +6 dB, with 20 dB of peak headroom.
    let g = lib
        .normalisation_gain(id, -14.0, &Default::default())
        .expect("gain");
    assert!((g - 2.0).abs() < 0.1, "{g}");
    // To 0 LUFS: +20 dB wanted, capped at +12 dB.
    let g = lib
        .normalisation_gain(id, 0.0, &Default::default())
        .expect("gain");
    assert!((g - 3.981).abs() < 0.01, "{g}");
    // A loud clip is turned down.
    let g = lib
        .normalisation_gain(id, -30.0, &Default::default())
        .expect("gain");
    assert!((g - 0.316).abs() < 0.02, "{g}");
}

#[test]
fn every_bundled_sound_decodes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sounds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("assets/sounds")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| {
                ["wav", "flac", "ogg", "mp3", "opus"].contains(&e.to_str().unwrap_or(""))
            })
        })
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    assert!(names.contains(&"chime.wav".to_owned()) && names.contains(&"airhorn.wav".to_owned()));
    for ext in ["wav", "flac", "ogg", "mp3"] {
        assert!(
            names.iter().any(|n| n.ends_with(ext)),
            "no {ext} in {names:?}"
        );
    }
    let total: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    assert!(total < 600_000, "bundled sounds take {total} bytes");
    let license = std::fs::read_to_string(dir.join("LICENSE.md")).expect("LICENSE.md");

    let lib = library(256 << 20, 2);
    let ids: Vec<SoundId> = files.iter().map(|p| lib.add(p.clone())).collect();
    lib.preload(&ids);
    for (&id, name) in ids.iter().zip(&names) {
        let samples = lib.wait_ready(id, WAIT).unwrap_or_else(|e| panic!("{e}"));
        let samples = samples.samples().cloned().expect("in memory");
        let duration = ready_duration(&lib, id);
        assert!(
            duration > Duration::from_millis(100) && duration <= Duration::from_millis(2500),
            "{name}: {duration:?}"
        );
        let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        // Made at -3 dBFS (0.708); lossy codecs and resampling move it a little.
        assert!((0.5..=0.9).contains(&peak), "{name}: peak {peak}");
        assert!(
            lib.normalisation_gain(id, -16.0, &Default::default())
                .is_some(),
            "{name}: loudness measured"
        );
        assert!(
            license.contains(name.as_str()),
            "{name} is not in LICENSE.md"
        );
    }
}
