//! The edit dialog's waveform: the clip's cached peaks drawn as one mesh, the trim window lit,
//! the fade envelope over it, and four handles to drag (start and end markers below, fade
//! handles in the strip along the top). Each frame costs one column per pixel, whatever the
//! clip's length.

use egui::epaint::Mesh;
use egui::{Color32, CornerRadius, Pos2, Rect, Sense, Stroke, pos2, vec2};

use super::style;
use crate::board::Sound;
use voxboard_audio::waveform::Waveform;

const HEIGHT: f32 = 96.0;
/// The strip along the top that holds the fade handles (the markers take the rest).
const STRIP: f32 = 16.0;
/// Half the width of a marker's grab area.
const GRAB: f32 = 6.0;

/// Draws the waveform of a clip `duration` seconds long and lets the handles edit the trim
/// and fades of `d`. `playhead` (0..=1 through the trimmed window) marks a preview playing.
pub fn show(
    ui: &mut egui::Ui,
    d: &mut Sound,
    waveform: &Waveform,
    duration: f64,
    playhead: Option<f32>,
) {
    let width = ui.available_width().max(120.0);
    let (rect, _) = ui.allocate_exact_size(vec2(width, HEIGHT), Sense::hover());
    let duration = duration.max(1e-3);
    let x_of = |secs: f64| rect.left() + (secs / duration).clamp(0.0, 1.0) as f32 * rect.width();
    let secs_of = |x: f32| f64::from(((x - rect.left()) / rect.width()).clamp(0.0, 1.0)) * duration;

    let start = d.trim_start.clamp(0.0, duration);
    let end = d.trim_end.unwrap_or(duration).clamp(start, duration);
    let fade_in = d.fade_in.clamp(0.0, end - start);
    let fade_out = d.fade_out.clamp(0.0, end - start);
    let (xs, xe) = (x_of(start), x_of(end));

    let painter = ui.painter_at(rect);
    let dark = ui.visuals().dark_mode;
    let background = if dark {
        Color32::from_gray(24)
    } else {
        Color32::from_gray(235)
    };
    painter.rect_filled(rect, CornerRadius::same(4), background);
    painter.add(peaks_mesh(rect, waveform, xs, xe));
    let (top, bottom) = (rect.top() + STRIP, rect.bottom() - 1.0);
    let envelope = vec![
        pos2(xs, bottom),
        pos2(x_of(start + fade_in), top),
        pos2(x_of(end - fade_out), top),
        pos2(xe, bottom),
    ];
    painter.add(egui::Shape::line(envelope, Stroke::new(1.5, style::WARN)));
    if let Some(p) = playhead {
        let x = xs + p.clamp(0.0, 1.0) * (xe - xs);
        painter.vline(x, rect.y_range(), Stroke::new(1.0, Color32::WHITE));
    }

    let marker = |x: f32| Rect::from_x_y_ranges(x - GRAB..=x + GRAB, top..=rect.bottom());
    let knob = |x: f32| Rect::from_center_size(pos2(x, rect.top() + STRIP / 2.0), vec2(14.0, 14.0));
    if let Some(x) = handle(ui, "Start marker", marker(xs), Knob::Marker) {
        d.trim_start = secs_of(x).min(end);
    }
    if let Some(x) = handle(ui, "End marker", marker(xe), Knob::Marker) {
        let secs = secs_of(x).max(start);
        // At the clip's end means "to the end", as the numeric field has it.
        d.trim_end = (secs < duration - 1e-3).then_some(secs);
    }
    if let Some(x) = handle(
        ui,
        "Fade-in handle",
        knob(x_of(start + fade_in)),
        Knob::Fade,
    ) {
        d.fade_in = (secs_of(x) - start).clamp(0.0, end - start);
    }
    if let Some(x) = handle(
        ui,
        "Fade-out handle",
        knob(x_of(end - fade_out)),
        Knob::Fade,
    ) {
        d.fade_out = (end - secs_of(x)).clamp(0.0, end - start);
    }
}

/// One column per pixel: lit inside the trim window, dimmed outside. One shape in all.
fn peaks_mesh(rect: Rect, waveform: &Waveform, xs: f32, xe: f32) -> egui::Shape {
    let columns = waveform.columns(rect.width().round() as usize);
    let (mid, half) = (
        rect.center().y + STRIP / 2.0,
        (rect.height() - STRIP) / 2.0 - 1.0,
    );
    let mut mesh = Mesh::default();
    for (i, (lo, hi)) in columns.iter().enumerate() {
        let x = rect.left() + i as f32;
        let colour = if (xs..xe).contains(&x) {
            style::ACCENT
        } else {
            style::MUTED.gamma_multiply(0.45)
        };
        // At least a pixel tall, so silence still shows as a line.
        let (y0, y1) = (
            mid - hi.clamp(-1.0, 1.0) * half,
            mid - lo.clamp(-1.0, 1.0) * half,
        );
        let column =
            Rect::from_min_max(pos2(x, y0.min(mid - 0.5)), pos2(x + 1.0, y1.max(mid + 0.5)));
        mesh.add_colored_rect(column, colour);
    }
    egui::Shape::mesh(mesh)
}

#[derive(Clone, Copy)]
enum Knob {
    Marker,
    Fade,
}

/// A draggable handle in `area`, named `label` for screen readers (and the UI tests). Returns
/// the pointer's x while it is dragged.
fn handle(ui: &mut egui::Ui, label: &str, area: Rect, knob: Knob) -> Option<f32> {
    let response = ui
        .interact(area, ui.scope_id().with(label), Sense::drag())
        .on_hover_cursor(egui::CursorIcon::ResizeHorizontal);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Slider, true, label));
    super::probe::mark(label, response.rect);
    let active = response.hovered() || response.dragged();
    let colour = if active { Color32::WHITE } else { style::WARN };
    let painter = ui.painter();
    let centre: Pos2 = area.center();
    match knob {
        Knob::Marker => {
            painter.vline(centre.x, area.y_range(), Stroke::new(2.0, colour));
            let tip = area.bottom();
            painter.add(egui::Shape::convex_polygon(
                vec![
                    pos2(centre.x - 5.0, tip),
                    pos2(centre.x + 5.0, tip),
                    pos2(centre.x, tip - 7.0),
                ],
                colour,
                Stroke::NONE,
            ));
        }
        Knob::Fade => {
            painter.circle_filled(centre, 5.0, colour);
        }
    }
    if response.dragged() {
        response.interact_pointer_pos().map(|p| p.x)
    } else {
        None
    }
}
