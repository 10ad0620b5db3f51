//! Cache and lifecycle tests that look inside the library. The user-facing behaviour (formats,
//! failures, progress, loudness, bundled sounds) is tested in `tests/audio_library.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const WAIT: Duration = Duration::from_secs(60);
/// Bytes of one second of 48 kHz stereo f32.
const SECOND: usize = 48_000 * 2 * 4;

/// Writes `seconds` of a sine at `freq` as 48 kHz stereo 16-bit wav (no resampling, so the
/// decoded size is exactly `seconds` × [`SECOND`]).
fn wav(dir: &Path, name: &str, seconds: f32, freq: f32) -> PathBuf {
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
    for i in 0..(48_000.0 * seconds) as usize {
        let s = 0.25 * (i as f32 * freq * std::f32::consts::TAU / 48_000.0).sin();
        let v = (s * 32767.0) as i16;
        w.write_sample(v).expect("write");
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finalize wav");
    path
}

fn library(cap: usize) -> SoundLibrary {
    SoundLibrary::new(LibraryConfig {
        memory_cap_bytes: cap,
        decode_threads: 1,
        ..LibraryConfig::default()
    })
}

fn load(lib: &SoundLibrary, id: SoundId) -> Arc<[f32]> {
    let source = lib.wait_ready(id, WAIT).unwrap_or_else(|e| panic!("{e}"));
    source
        .samples()
        .cloned()
        .expect("a short clip is held in memory")
}

#[test]
fn least_recently_used_goes_first_and_comes_back_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for two one-second clips, not three.
    let lib = library(2 * SECOND + SECOND / 2);
    let a = lib.add(wav(dir.path(), "a.wav", 1.0, 440.0));
    let b = lib.add(wav(dir.path(), "b.wav", 1.0, 550.0));
    let c = lib.add(wav(dir.path(), "c.wav", 1.0, 660.0));
    load(&lib, a);
    load(&lib, b);
    assert!(lib.get(a).is_some()); // a is now more recent than b
    load(&lib, c);
    assert!(lib.get(b).is_none(), "b was least recently used");
    assert_eq!(lib.state(b), Some(SoundState::Unloaded));
    assert!(lib.get(c).is_some());
    assert!(lib.get(a).is_some());
    let stats = lib.stats();
    assert_eq!((stats.cached_clips, stats.cached_bytes), (2, 2 * SECOND));
    assert_eq!(stats.evictions, 1);

    // Order is now c, a (a touched last): bringing b back evicts c.
    lib.request(b);
    load(&lib, b);
    assert!(lib.get(c).is_none());
    assert!(lib.get(a).is_some() && lib.get(b).is_some());
    assert_eq!(lib.stats().decodes_started, 4);
    assert!(lib.stats().cached_bytes <= lib.memory_cap_bytes());
}

#[test]
fn eviction_leaves_held_clips_playing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(SECOND + SECOND / 2);
    let a = lib.add(wav(dir.path(), "a.wav", 1.0, 440.0));
    let b = lib.add(wav(dir.path(), "b.wav", 1.0, 550.0));
    let playing = load(&lib, a);
    let copy: Vec<f32> = playing.to_vec();
    load(&lib, b);
    assert!(lib.get(a).is_none(), "a evicted");
    assert_eq!(&playing[..], &copy[..], "the playback's Arc is untouched");
    assert_eq!(Arc::strong_count(&playing), 1, "the cache let go of it");
}

#[test]
fn clip_larger_than_the_cap_is_handed_over_not_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(SECOND / 2);
    let big = lib.add(wav(dir.path(), "big.wav", 1.0, 440.0));
    let samples = load(&lib, big);
    assert_eq!(samples.len(), 96_000);
    assert_eq!(lib.state(big), Some(SoundState::Unloaded));
    assert!(lib.get(big).is_none());
    assert_eq!(lib.stats().cached_bytes, 0);
    // Known loudness survives for normalisation, though the samples are gone.
    assert!(
        lib.normalisation_gain(big, -20.0, &Default::default())
            .is_some()
    );
}

#[test]
fn reload_reads_the_changed_file_and_reports_a_vanished_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(64 * SECOND);
    let path = wav(dir.path(), "s.wav", 1.0, 440.0);
    let id = lib.add(path.clone());
    let old = load(&lib, id);
    assert_eq!(old.len(), 96_000);

    wav(dir.path(), "s.wav", 0.5, 440.0);
    assert!(
        lib.get(id).is_some(),
        "no reload yet: the old clip is served"
    );
    lib.reload(id);
    assert_eq!(load(&lib, id).len(), 48_000);

    std::fs::remove_file(&path).expect("remove");
    lib.reload(id);
    let err = lib.wait_ready(id, WAIT).expect_err("file is gone");
    assert!(err.contains("s.wav"), "{err}");
    match lib.state(id) {
        Some(SoundState::Failed { reason }) => assert_eq!(reason, err),
        other => panic!("{other:?}"),
    }
    assert_eq!(lib.normalisation_gain(id, -20.0, &Default::default()), None);
    // A playback that started before the file vanished still has all of its audio.
    assert_eq!(old.len(), 96_000);
    assert!(old.iter().any(|&s| s != 0.0));
}

#[test]
fn reload_of_an_unloaded_sound_decodes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(SECOND);
    let id = lib.add(wav(dir.path(), "s.wav", 0.2, 440.0));
    lib.reload(id);
    assert_eq!(lib.state(id), Some(SoundState::Unloaded));
    assert_eq!(lib.stats().decodes_started, 0);
}

#[test]
fn removed_sounds_are_forgotten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = library(64 * SECOND);
    let id = lib.add(wav(dir.path(), "s.wav", 0.5, 440.0));
    let held = load(&lib, id);
    lib.remove(id);
    assert_eq!(lib.state(id), None);
    assert_eq!(lib.path(id), None);
    assert!(lib.get(id).is_none());
    assert!(lib.wait_ready(id, WAIT).is_err());
    assert_eq!(lib.stats().cached_bytes, 0);
    assert_eq!(lib.stats().sounds, 0);
    assert_eq!(held.len(), 48_000);
    // Ids are not reused.
    let next = lib.add(dir.path().join("s.wav"));
    assert_ne!(next, id);
    assert_eq!(lib.ids(), vec![next]);
}

#[test]
fn decode_threads_stop_with_the_last_handle() {
    let lib = library(SECOND);
    let other = lib.clone();
    let shared = Arc::downgrade(&lib.shared);
    drop(lib);
    assert!(shared.upgrade().is_some(), "a clone is still alive");
    drop(other);
    // The threads hold the shared state until they see the queue closed; wait (bounded) for
    // them to let go.
    let deadline = Instant::now() + WAIT;
    while shared.upgrade().is_some() {
        assert!(Instant::now() < deadline, "decode threads did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn handle_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<SoundLibrary>();
    let lib = library(SECOND);
    let id = lib.add(PathBuf::from("x.wav"));
    assert_eq!(lib.clone().path(id), Some(PathBuf::from("x.wav")));
}
