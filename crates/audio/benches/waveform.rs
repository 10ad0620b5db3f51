//! The edit dialog's waveform: computing it for a 1-hour clip (once, on the decode thread) and
//! squeezing it to a dialog's width (every frame the dialog is drawn).
//!
//! `cargo bench -p voxboard-audio --bench waveform`. The clip is 1 hour of 48 kHz stereo (a
//! sine with a slow swell; 1.4 GB of f32, made once before timing). As a smoke test under
//! `cargo test --all-targets` (no `--bench` argument) it is 10 s, to keep CI quick.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use voxboard_audio::waveform::Waveform;

#[path = "common/hour_clip.rs"]
mod hour_clip;
use hour_clip::{clip, seconds};

fn bench_waveform(c: &mut Criterion) {
    let seconds = seconds();
    let clip = clip(seconds);
    let mut group = c.benchmark_group("waveform");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements((seconds * 48_000) as u64));
    group.bench_function(format!("compute_{seconds}s_48k_stereo"), |b| {
        b.iter(|| Waveform::compute(black_box(&clip)))
    });
    group.finish();

    let waveform = Waveform::compute(&clip);
    drop(clip);
    c.bench_function("waveform/columns_600", |b| {
        b.iter(|| black_box(&waveform).columns(black_box(600)))
    });
}

criterion_group!(benches, bench_waveform);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
