//! The log panel and the `tracing` layer that feeds it: events go into a bounded ring buffer
//! (oldest dropped first) that the panel reads each frame. Nothing here logs secrets; the
//! engine never logs the token and neither does the UI.
//!
//! The layer never touches egui: an event can be logged while egui holds its context lock (egui
//! logs from inside it, and so may code inside `ctx.input(..)`), and asking for a repaint there
//! would take that lock again and deadlock. It only nudges a waker thread, which owns the repaint
//! call.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
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
    /// Wakes the waker thread; a full slot means a wake is pending already (coalesced).
    waker: Option<SyncSender<()>>,
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
                waker: None,
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
        let mut inner = self.lock();
        if inner.lines.len() == CAPACITY {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line);
        inner.total += 1;
        if let Some(waker) = &inner.waker
            && let Err(TrySendError::Disconnected(())) = waker.try_send(())
        {
            inner.waker = None;
        }
    }

    /// Lets new lines wake the UI, through a thread of its own (see the module comment).
    pub fn set_repaint(&self, ctx: egui::Context) {
        let (tx, rx) = sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("voxboard-log-waker".into())
            .spawn(move || wake_on_news(&rx, &ctx));
        // Without the thread the panel still shows new lines on the next repaint.
        if spawned.is_ok() {
            // Replacing a sender ends the thread of the previous context.
            self.lock().waker = Some(tx);
        }
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

/// One repaint per burst of lines, until the buffer's sender is gone.
fn wake_on_news(news: &Receiver<()>, ctx: &egui::Context) {
    while news.recv().is_ok() {
        ctx.request_repaint_after(Duration::from_millis(250));
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
    // Not the decoders' own errors: a file that is not audio is marked on its button in our
    // words (see `logging::DEFAULT_FILTER`).
    let ui_filter = tracing_subscriber::filter::Targets::new()
        .with_default(Level::INFO)
        .with_target("voxboard::ui", Level::DEBUG)
        .with_target("symphonia", tracing_subscriber::filter::LevelFilter::OFF);
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

    /// A line logged while egui holds its context lock (egui's own log calls, or ours inside
    /// `ctx.input(..)`): the layer used to ask for a repaint right there, which takes the same
    /// lock, and hung. The body runs on a thread so a regression fails instead of hanging.
    #[test]
    fn logging_inside_egui_lock_does_not_deadlock_and_still_wakes_the_ui() {
        use tracing_subscriber::prelude::*;
        let (woken_tx, woken) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let buffer = LogBuffer::default();
        let b = buffer.clone();
        std::thread::spawn(move || {
            let ctx = egui::Context::default();
            ctx.set_request_repaint_callback(move |_| {
                let _ = woken_tx.send(());
            });
            b.set_repaint(ctx.clone());
            let subscriber = tracing_subscriber::registry().with(UiLogLayer::new(b.clone()));
            tracing::subscriber::with_default(subscriber, || {
                ctx.input(|_| tracing::info!("logged under egui's read lock"));
                ctx.memory_mut(|_| tracing::warn!("logged under egui's write lock"));
            });
            let _ = done_tx.send(ctx);
        });
        let ctx = done
            .recv_timeout(Duration::from_secs(30))
            .expect("logging inside egui's lock deadlocked");
        assert_eq!(buffer.total(), 2);
        woken
            .recv_timeout(Duration::from_secs(30))
            .expect("new lines wake the UI");
        drop(ctx);
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
