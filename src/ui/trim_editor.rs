//! The edit dialog's trim and fades: the waveform with its handles, the numbers (seconds of
//! the clip) and a preview on the local monitor. The board keeps them; the file is never
//! touched.

use egui::vec2;

use super::core::Core;
use super::{style, waveform_view};
use crate::board::Sound;
use voxboard_audio::library::SoundState;

/// The whole section for `d` (the dialog's draft). `preview` is the preview playing, if any.
pub fn section(ui: &mut egui::Ui, d: &mut Sound, core: &mut Core, preview: &mut Option<u64>) {
    let duration = match core.sound_state(d.id) {
        Some(SoundState::Ready { duration, .. }) => Some(duration.as_secs_f64()),
        _ => None,
    };
    let playhead = preview.and_then(|id| core.playback_progress(id));
    match (core.waveform(d.id), core.sound_state(d.id)) {
        (Some(w), _) => {
            let secs = w.frames as f64 / f64::from(voxboard_audio::SAMPLE_RATE);
            waveform_view::show(ui, d, &w, secs, playhead);
        }
        (None, Some(SoundState::Failed { reason })) => {
            ui.colored_label(style::BAD, reason);
        }
        (None, _) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.weak("Reading the clip for its waveform…");
            });
        }
    }
    fields(ui, d, duration);
    ui.horizontal(|ui| {
        if playhead.is_some() {
            if ui.button("■ Stop preview").clicked()
                && let Some(id) = preview.take()
            {
                core.stop_playback(id);
            }
        } else if ui
            .button("▶ Preview")
            .on_hover_text("Plays the trimmed clip on your monitor output only.")
            .clicked()
        {
            match core.preview(d) {
                Ok(id) => *preview = Some(id),
                Err(why) => core.toast(&why),
            }
        }
        ui.weak(loudness_text(core, d));
    });
}

/// Shows start, end, fade-in and fade-out of `d`. `duration` (seconds) is the decoded clip's
/// length, when known: it bounds the fields and stands for "to the end".
/// The measured loudness and true peak of the trimmed window (following the markers as they
/// move), and what normalisation does to it.
fn loudness_text(core: &Core, d: &Sound) -> String {
    let Some(m) = core.loudness(d) else {
        return "Loudness: not measured yet".into();
    };
    let Some(lufs) = m.lufs else {
        return "Loudness: too short or silent to measure".into();
    };
    let mut text = format!("{lufs:.1} LUFS · true peak {:.1} dBTP", m.true_peak_db());
    let target = core.board.settings.loudness_target_lufs;
    if d.normalise
        && let Some(g) = voxboard_audio::loudness::gain_to_target(lufs, m.true_peak, target)
    {
        text.push_str(&format!(
            " · {:+.1} dB to {target:.0} LUFS",
            20.0 * g.log10()
        ));
    }
    text
}

fn fields(ui: &mut egui::Ui, d: &mut Sound, duration: Option<f64>) {
    let max = duration.unwrap_or(f64::MAX);
    egui::Grid::new("trim-grid")
        .num_columns(4)
        .spacing(vec2(12.0, 8.0))
        .show(ui, |ui| {
            let l = ui.label("Start");
            seconds(ui, l, &mut d.trim_start, 0.0..=max);
            let l = ui.label("End");
            match (d.trim_end, duration) {
                // Untrimmed and not decoded yet: no length to show.
                (None, None) => {
                    ui.weak("the clip's end");
                }
                (end, _) => {
                    let mut end = end.unwrap_or(max);
                    if seconds(ui, l, &mut end, d.trim_start..=max).changed() {
                        // At (or past) the clip's end means "to the end": a replaced file
                        // still plays whole.
                        d.trim_end = (end < max).then_some(end);
                    }
                }
            }
            ui.end_row();

            let l = ui.label("Fade in");
            seconds(ui, l, &mut d.fade_in, 0.0..=max);
            let l = ui.label("Fade out");
            seconds(ui, l, &mut d.fade_out, 0.0..=max);
            ui.end_row();
        });
}

/// A seconds field named by `label` (for screen readers and the UI tests).
fn seconds(
    ui: &mut egui::Ui,
    label: egui::Response,
    value: &mut f64,
    range: std::ops::RangeInclusive<f64>,
) -> egui::Response {
    ui.add(
        egui::DragValue::new(value)
            .range(range)
            .speed(0.01)
            .max_decimals(3)
            .suffix(" s"),
    )
    .labelled_by(label.id)
}
