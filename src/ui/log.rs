//! The log panel and the `tracing` layer that feeds it: events go into a bounded ring buffer
//! (oldest dropped first) that the panel reads each frame. Nothing here logs secrets; the
//! engine never logs the token and neither does the UI.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How many lines the panel keeps.
pub const CAPACITY: usize = 2_000;

#[derive(Debug, Clone)]
pub struct LogLine {
    pub since_start: Duration,
    pub level: Level,
    pub target: String,
    pub message: String,
}

struct Inner {
    lines: VecDeque<LogLine>,
    /// Lines ever pushed (the panel uses it to notice news).
    total: u64,
    repaint: Option<egui::Context>,
}

/// A cheap-to-clone handle to the ring buffer.
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                lines: VecDeque::with_capacity(256),
                total: 0,
                repaint: None,
            })),
            start: Instant::now(),
        }
    }
}

impl LogBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, level: Level, target: &str, message: String) {
        let line = LogLine {
            since_start: self.start.elapsed(),
            level,
            target: target.to_owned(),
            message,
        };
        let ctx = {
            let mut inner = self.lock();
            if inner.lines.len() == CAPACITY {
                inner.lines.pop_front();
            }
            inner.lines.push_back(line);
            inner.total += 1;
            inner.repaint.clone()
        };
        // Coalesced: a burst of lines costs one repaint.
        if let Some(ctx) = ctx {
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    /// Lets new lines wake the UI.
    pub fn set_repaint(&self, ctx: egui::Context) {
        self.lock().repaint = Some(ctx);
    }

    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// A copy of the lines at `min` level or more severe.
    pub fn snapshot(&self, min: Level) -> Vec<LogLine> {
        self.lock()
            .lines
            .iter()
            .filter(|l| l.level <= min)
            .cloned()
            .collect()
    }
}

/// The `tracing` layer that writes into a [`LogBuffer`].
pub struct UiLogLayer {
    buffer: LogBuffer,
}

impl UiLogLayer {
    pub fn new(buffer: LogBuffer) -> Self {
        Self { buffer }
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        // `log.*` says where a `log` record came from (tracing-log's bridge): noise here.
        if field.name().starts_with("log.") {
            return;
        }
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name().starts_with("log.") {
            return;
        }
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for UiLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        let meta = event.metadata();
        self.buffer
            .push(*meta.level(), meta.target(), v.message + &v.fields);
    }
}

/// Logs to stderr (level from `RUST_LOG`, warnings by default) and into `buffer` (info and up),
/// both behind the secret guard of [`crate::logging`].
pub fn init(buffer: &LogBuffer) {
    use tracing_subscriber::prelude::*;
    let ui_filter = tracing_subscriber::filter::Targets::new()
        .with_default(Level::INFO)
        .with_target("voxboard::ui", Level::DEBUG);
    let _ = tracing_subscriber::registry()
        .with(crate::logging::secret_guard::<tracing_subscriber::Registry>())
        .with(crate::logging::stderr_layer())
        .with(UiLogLayer::new(buffer.clone()).with_filter(ui_filter))
        .try_init();
}

/// The log panel: a level filter and the newest lines, following the tail.
pub struct LogPanel {
    buffer: LogBuffer,
    level: Level,
    filter: String,
}

impl LogPanel {
    pub fn new(buffer: LogBuffer) -> Self {
        Self {
            buffer,
            level: Level::INFO,
            filter: String::new(),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("Log");
            ui.add_space(12.0);
            let label = ui.label("Show");
            egui::ComboBox::from_id_salt("log-level")
                .selected_text(level_name(self.level))
                .show_ui(ui, |ui| {
                    for l in [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG] {
                        ui.selectable_value(&mut self.level, l, level_name(l));
                    }
                })
                .response
                .labelled_by(label.id);
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("Filter text")
                    .desired_width(200.0),
            );
        });
        ui.separator();
        let needle = self.filter.to_lowercase();
        let lines: Vec<LogLine> = self
            .buffer
            .snapshot(self.level)
            .into_iter()
            .filter(|l| {
                needle.is_empty()
                    || l.message.to_lowercase().contains(&needle)
                    || l.target.contains(&needle)
            })
            .collect();
        if lines.is_empty() {
            ui.weak("Nothing logged at this level yet.");
            return;
        }
        let row_h = ui.text_style_height(&egui::TextStyle::Monospace) + 4.0;
        ui.spacing_mut().item_spacing.y = 4.0;
        ui.spacing_mut().interact_size.y = row_h - 4.0;
        egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink(false)
            .show_rows(ui, row_h, lines.len(), |ui, range| {
                for line in &lines[range] {
                    ui.horizontal(|ui| {
                        let secs = line.since_start.as_secs_f64();
                        ui.monospace(format!("{:02}:{:06.3}", (secs / 60.0) as u64, secs % 60.0));
                        ui.colored_label(level_colour(line.level), level_name(line.level));
                        ui.weak(short_target(&line.target));
                        ui.monospace(&line.message);
                    });
                }
            });
    }
}

/// `voxboard_voice::engine::connection` → `engine::connection`, `voxboard_sim` → `sim`.
fn short_target(t: &str) -> &str {
    let t = t.strip_prefix("voxboard_voice::").unwrap_or(t);
    t.strip_prefix("voxboard::")
        .or_else(|| t.strip_prefix("voxboard_"))
        .unwrap_or(t)
}

pub fn level_name(l: Level) -> &'static str {
    match l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn level_colour(l: Level) -> egui::Color32 {
    match l {
        Level::ERROR => egui::Color32::from_rgb(237, 66, 69),
        Level::WARN => egui::Color32::from_rgb(250, 166, 26),
        Level::INFO => egui::Color32::from_rgb(88, 160, 242),
        _ => egui::Color32::GRAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffer_is_bounded_and_filters_by_level() {
        let b = LogBuffer::default();
        for i in 0..CAPACITY + 10 {
            b.push(Level::DEBUG, "t", format!("line {i}"));
        }
        b.push(Level::WARN, "t", "careful".into());
        assert_eq!(b.snapshot(Level::TRACE).len(), CAPACITY);
        let warn = b.snapshot(Level::WARN);
        assert_eq!(warn.len(), 1);
        assert_eq!(warn[0].message, "careful");
        assert_eq!(b.total(), CAPACITY as u64 + 11);
    }

    #[test]
    fn targets_are_shown_without_the_crate_prefix() {
        assert_eq!(
            short_target("voxboard_voice::engine::connection"),
            "engine::connection"
        );
        assert_eq!(short_target("voxboard_audio::library"), "audio::library");
        assert_eq!(short_target("voxboard_sim"), "sim");
        assert_eq!(short_target("voxboard::ui"), "ui");
        assert_eq!(short_target("davey::session"), "davey::session");
    }
}
