//! Colours, spacing and small painted widgets shared by the panels.

use egui::{Color32, CornerRadius, Stroke, Visuals};

use crate::board::Theme;
use voxboard_voice::engine::Phase;

pub const ACCENT: Color32 = Color32::from_rgb(88, 101, 242);
pub const GOOD: Color32 = Color32::from_rgb(59, 165, 93);
pub const WARN: Color32 = Color32::from_rgb(250, 166, 26);
pub const BAD: Color32 = Color32::from_rgb(237, 66, 69);
pub const MUTED: Color32 = Color32::from_rgb(130, 134, 146);

/// Applies the theme and Voxboard's spacing to the context.
pub fn apply(ctx: &egui::Context, theme: Theme) {
    let mut visuals = match theme {
        Theme::Dark => Visuals::dark(),
        Theme::Light => Visuals::light(),
    };
    let dark = theme == Theme::Dark;
    if dark {
        visuals.panel_fill = Color32::from_rgb(30, 31, 36);
        visuals.window_fill = Color32::from_rgb(36, 37, 43);
        visuals.extreme_bg_color = Color32::from_rgb(22, 23, 27);
        visuals.faint_bg_color = Color32::from_rgb(40, 41, 48);
    }
    visuals.selection.bg_fill = ACCENT;
    visuals.selection.stroke = Stroke::new(1.0, Color32::WHITE);
    visuals.hyperlink_color = ACCENT;
    let r = CornerRadius::same(6);
    visuals.widgets.noninteractive.corner_radius = r;
    visuals.widgets.inactive.corner_radius = r;
    visuals.widgets.hovered.corner_radius = r;
    visuals.widgets.active.corner_radius = r;
    visuals.widgets.open.corner_radius = r;
    visuals.window_corner_radius = CornerRadius::same(10);
    ctx.set_visuals(visuals);
    ctx.global_style_mut(|s| {
        s.spacing.item_spacing = egui::vec2(8.0, 6.0);
        s.spacing.button_padding = egui::vec2(10.0, 5.0);
        s.spacing.interact_size.y = 26.0;
    });
}

/// A card: a rounded frame one step lighter than the panel.
pub fn card(ui: &egui::Ui) -> egui::Frame {
    egui::Frame::new()
        .fill(ui.visuals().faint_bg_color)
        .stroke(ui.visuals().widgets.noninteractive.bg_stroke)
        .corner_radius(CornerRadius::same(10))
        .inner_margin(egui::Margin::same(12))
}

/// A small filled pill with text, e.g. a connection phase.
pub fn pill(ui: &mut egui::Ui, text: &str, colour: Color32) -> egui::Response {
    let galley = ui.painter().layout_no_wrap(
        text.to_owned(),
        egui::FontId::proportional(12.0),
        Color32::WHITE,
    );
    let size = galley.size() + egui::vec2(14.0, 6.0);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
    ui.painter()
        .rect_filled(rect, CornerRadius::same(255), colour.gamma_multiply(0.85));
    ui.painter()
        .galley(rect.center() - galley.size() / 2.0, galley, Color32::WHITE);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, text));
    response
}

/// A round status light.
pub fn light(ui: &mut egui::Ui, on: bool, colour: Color32, label: &str) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
    let c = if on {
        colour
    } else {
        MUTED.gamma_multiply(0.5)
    };
    ui.painter().circle_filled(rect.center(), 5.0, c);
    if on {
        ui.painter().circle_stroke(
            rect.center(),
            6.5,
            Stroke::new(1.5, colour.gamma_multiply(0.4)),
        );
    }
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, label));
    response.on_hover_text(label)
}

/// A horizontal level meter (0..=1) with green/amber/red zones.
pub fn meter(ui: &mut egui::Ui, level: f32, width: f32) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, 8.0), egui::Sense::hover());
    let p = ui.painter();
    p.rect_filled(rect, CornerRadius::same(4), ui.visuals().extreme_bg_color);
    let level = level.clamp(0.0, 1.0);
    if level > 0.0 {
        let mut fill = rect;
        fill.set_width(rect.width() * level);
        let c = if level > 0.9 {
            BAD
        } else if level > 0.6 {
            WARN
        } else {
            GOOD
        };
        p.rect_filled(fill, CornerRadius::same(4), c);
    }
    response
}

/// Colour for a connection phase.
pub fn phase_colour(phase: Phase) -> Color32 {
    match phase {
        Phase::Ready => GOOD,
        Phase::Failed => BAD,
        Phase::Disconnected | Phase::Leaving => MUTED,
        // On the way up, or recovering (a 4014 waiting for the gateway included).
        _ => WARN,
    }
}

pub fn rgb(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}

/// "1.2 MB" style byte counts.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// "0:03.2" style durations.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    format!("{}:{:04.1}", (s / 60.0) as u64, s % 60.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_bytes_and_durations() {
        assert_eq!(super::bytes(999), "999 B");
        assert_eq!(super::bytes(1_234_567), "1.2 MB");
        assert_eq!(
            super::duration(std::time::Duration::from_millis(63_250)),
            "1:03.2"
        );
    }
}

#[cfg(test)]
mod glyph_tests {
    /// Every non-ASCII character the UI draws must be in the bundled fonts (no tofu on a
    /// machine without emoji fonts).
    #[test]
    fn every_icon_has_a_glyph() {
        let ctx = egui::Context::default();
        let mut out = ctx.run_ui(Default::default(), |_| {});
        out.textures_delta.clear();
        let candidates = "·×—“”…⏹☀⚠✏➕🌙🎤🎭🔁🔊🔍🗑";
        let missing: String = ctx.fonts_mut(|f| {
            candidates
                .chars()
                .filter(|c| !f.has_glyph(&egui::FontId::proportional(14.0), *c))
                .collect()
        });
        assert_eq!(missing, "", "glyphs missing from the bundled fonts");
    }
}
