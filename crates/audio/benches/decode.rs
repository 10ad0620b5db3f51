//! Decode speed per format, and the cost of a sound library lookup.
//!
//! `cargo bench --bench decode`. At start, sox makes 10 s of 44.1 kHz stereo audio (a chord
//! with a slow sweep and some noise, so the lossy encoders have real work) as mp3, ogg vorbis
//! and flac in a temp dir. Criterion reports decode throughput in output frames per second
//! (48 000 frames = 1 s of audio, so Kelem/s ÷ 48 = × realtime); a summary line per format
//! prints × realtime directly. Decoding includes resampling to 48 kHz.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use voxboard_audio::decode::decode_file;
use voxboard_audio::library::{LibraryConfig, SoundLibrary};

const SECONDS: u64 = 10;
const FORMATS: [(&str, &[&str]); 3] = [
    ("mp3", &["-C", "192"]),
    ("ogg", &["-C", "5"]),
    ("flac", &["-C", "5"]),
];

/// Makes the 10 s test file in each format; panics with a plain message if sox is missing.
fn make_files(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    FORMATS
        .iter()
        .map(|&(ext, opts)| {
            let path = dir.join(format!("bench.{ext}"));
            let status = Command::new("sox")
                .args(["-R", "-n", "-r", "44100", "-c", "2"])
                .args(opts)
                .arg(&path)
                .args(["synth", &SECONDS.to_string()])
                .args(["sine", "220", "sine", "277:554", "pinknoise"])
                .args(["remix", "1v0.5,3v0.1", "2v0.5,3v0.1", "gain", "-n", "-3"])
                .status()
                .expect("the decode bench needs sox (apt-get install sox libsox-fmt-mp3)");
            assert!(status.success(), "sox failed to make {}", path.display());
            (ext, path)
        })
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = make_files(dir.path());
    let mut group = c.benchmark_group(format!("decode/{SECONDS}s_44k1_stereo"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(SECONDS * 48_000));
    for (ext, path) in &files {
        group.bench_function(*ext, |b| {
            b.iter(|| decode_file(black_box(path), &mut |_| {}).expect("decodes"));
        });
    }
    group.finish();
    realtime_summary(&files);
}

/// Median of a few full decodes, as × realtime.
fn realtime_summary(files: &[(&str, PathBuf)]) {
    for (ext, path) in files {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let clip = decode_file(path, &mut |_| {}).expect("decodes");
                black_box(clip);
                start.elapsed()
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "decode {ext}: {SECONDS} s of audio in {:.1} ms = {:.0}x realtime (median of 5)",
            median.as_secs_f64() * 1000.0,
            SECONDS as f64 / median.as_secs_f64()
        );
    }
}

fn bench_library_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("short.wav");
    let status = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "2", "-b", "16"])
        .arg(&path)
        .args(["synth", "1", "sine", "440", "gain", "-3"])
        .status()
        .expect("sox");
    assert!(status.success());
    let lib = SoundLibrary::new(LibraryConfig::default());
    // A full board: 500 sounds, one of them in memory.
    let ids: Vec<_> = (0..500).map(|_| lib.add(path.clone())).collect();
    let hit = ids[250];
    lib.wait_ready(hit, Duration::from_secs(60))
        .expect("decodes");
    let miss = ids[251];
    let mut group = c.benchmark_group("library");
    group.bench_function("get_hit", |b| b.iter(|| lib.get(black_box(hit))));
    group.bench_function("get_miss", |b| b.iter(|| lib.get(black_box(miss))));
    group.bench_function("state", |b| b.iter(|| lib.state(black_box(hit))));
    group.finish();
}

criterion_group!(benches, bench_decode, bench_library_get);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
