//! Loudness on the decode thread: the whole-clip meter pass as it was, against the per-100 ms
//! profile that now replaces it (so that a trim window's loudness needs no samples), and the
//! window lookup the edit dialog makes while a marker is dragged.
//!
//! `cargo bench -p voxboard-audio --bench loudness`. The clip is 1 hour of 48 kHz stereo (as in
//! the waveform bench); as a smoke test under `cargo test --all-targets` it is 10 s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use voxboard_audio::loudness::{Profile, measure};
use voxboard_audio::shaping::Shape;

#[path = "common/hour_clip.rs"]
mod hour_clip;
use hour_clip::{clip, seconds};

fn bench_loudness(c: &mut Criterion) {
    let seconds = seconds();
    let clip = clip(seconds);
    let mut group = c.benchmark_group("loudness");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements((seconds * 48_000) as u64));
    group.bench_function(format!("measure_{seconds}s"), |b| {
        b.iter(|| measure(black_box(&clip)))
    });
    group.bench_function(format!("profile_{seconds}s"), |b| {
        b.iter(|| Profile::measure(black_box(&clip)))
    });
    group.finish();

    let profile = Profile::measure(&clip).expect("meter");
    drop(clip);
    let window = Shape {
        start: seconds as f64 * 0.1,
        end: Some(seconds as f64 * 0.9),
        ..Default::default()
    };
    c.bench_function(&format!("loudness/window_of_{seconds}s"), |b| {
        b.iter(|| black_box(&profile).window(black_box(&window)))
    });
}

criterion_group!(benches, bench_loudness);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
