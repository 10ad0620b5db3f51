//! The UI frame cost of the edit dialog's waveform: one egui frame laying out the waveform
//! widget of a 1-hour clip with its handles, and tessellating it into triangles (what the
//! CPU does per frame; the GPU's share is not measured here).
//!
//! `cargo bench -p voxboard --bench waveform_frame`. The waveform comes from 1 hour of
//! 48 kHz stereo (10 s when run once as a test by `cargo test --all-targets`, which passes no
//! `--bench`); drawing costs the same for any length, as the peaks are a fixed 4096 buckets.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use voxboard::board::Sound;
use voxboard::ui::waveform_view;
use voxboard_audio::waveform::Waveform;

fn seconds() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        3_600
    } else {
        10
    }
}

fn waveform(seconds: usize) -> Waveform {
    let frames = seconds * 48_000;
    let samples: Vec<f32> = (0..frames)
        .flat_map(|i| {
            let t = i as f32 / 48_000.0;
            let s = (0.5 + 0.4 * (t * 0.01).sin()) * (t * 440.0 * std::f32::consts::TAU).sin();
            [s, -s]
        })
        .collect();
    Waveform::compute(&samples)
}

fn bench_frame(c: &mut Criterion) {
    let seconds = seconds();
    let w = waveform(seconds);
    let duration = seconds as f64;
    let mut sound = Sound {
        trim_start: duration * 0.1,
        trim_end: Some(duration * 0.9),
        fade_in: duration * 0.05,
        fade_out: duration * 0.05,
        ..Sound::default()
    };
    let ctx = egui::Context::default();
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(480.0, 200.0),
        )),
        ..Default::default()
    };
    let mut frame = || {
        let mut output = ctx.run_ui(input(), |ui| {
            ui.set_width(420.0);
            waveform_view::show(ui, &mut sound, black_box(&w), duration, Some(0.5));
        });
        // No renderer here to upload the font atlas to.
        output.textures_delta.clear();
        ctx.tessellate(output.shapes, output.pixels_per_point)
    };
    // What is timed really draws the waveform: a quad (4 vertices) per column at least.
    let vertices: usize = frame()
        .iter()
        .filter_map(|p| match &p.primitive {
            egui::epaint::Primitive::Mesh(m) => Some(m.vertices.len()),
            _ => None,
        })
        .sum();
    assert!(vertices >= 420 * 4, "only {vertices} vertices drawn");
    c.bench_function("edit_dialog/waveform_frame_420px", |b| {
        b.iter(|| black_box(frame()))
    });
}

criterion_group!(benches, bench_frame);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
