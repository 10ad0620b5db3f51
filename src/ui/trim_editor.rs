//! The edit dialog's trim and fades: the numbers, in seconds of the clip. The board keeps
//! them; the file is never touched.

use egui::vec2;

use crate::board::Sound;

/// Shows start, end, fade-in and fade-out of `d`. `duration` (seconds) is the decoded clip's
/// length, when known: it bounds the fields and stands for "to the end".
pub fn fields(ui: &mut egui::Ui, d: &mut Sound, duration: Option<f64>) {
    let max = duration.unwrap_or(f64::MAX);
    egui::Grid::new("trim-grid")
        .num_columns(4)
        .spacing(vec2(12.0, 8.0))
        .show(ui, |ui| {
            let l = ui.label("Start");
            seconds(ui, l, &mut d.trim_start, 0.0..=max);
            let l = ui.label("End");
            let mut end = d.trim_end.unwrap_or(max.min(3_600.0 * 24.0));
            if seconds(ui, l, &mut end, d.trim_start..=max).changed() {
                // At (or past) the clip's end means "to the end": a replaced file still plays
                // whole.
                d.trim_end = (end < max).then_some(end);
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
