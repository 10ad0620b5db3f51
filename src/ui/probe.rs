//! Where named widgets are on screen, for scripts that drive the real window with xdotool
//! (`scripts/e2e-gui`), so they need no fixed coordinates. With `VOXBOARD_UI_PROBE=FILE` set,
//! the app keeps FILE holding one line per probed widget, `NAME X Y` (its centre in window
//! points), rewritten whole (write, then rename) by a thread of its own whenever one moves:
//! the UI never waits on the disk. Unset, [`mark`] does nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

pub const ENV: &str = "VOXBOARD_UI_PROBE";

struct Probe {
    centres: BTreeMap<String, (i32, i32)>,
    writer: Sender<String>,
}

fn probe() -> Option<&'static Mutex<Probe>> {
    static PROBE: OnceLock<Option<Mutex<Probe>>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let path = PathBuf::from(std::env::var_os(ENV)?);
            let (writer, texts) = channel::<String>();
            std::thread::Builder::new()
                .name("voxboard-ui-probe".into())
                .spawn(move || {
                    let tmp = path.with_extension("tmp");
                    // Only the newest layout matters: skip to it.
                    while let Ok(mut text) = texts.recv() {
                        text = texts.try_iter().last().unwrap_or(text);
                        let written =
                            std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
                        if let Err(e) = written {
                            tracing::warn!("{ENV}: cannot write {}: {e}", path.display());
                        }
                    }
                })
                .ok()?;
            Some(Mutex::new(Probe {
                centres: BTreeMap::new(),
                writer,
            }))
        })
        .as_ref()
}

/// Records where the widget `name` is this frame (nothing unless the probe is on).
pub fn mark(name: &str, rect: egui::Rect) {
    let Some(probe) = probe() else {
        return;
    };
    let mut p = probe.lock().unwrap_or_else(|e| e.into_inner());
    let centre = (
        rect.center().x.round() as i32,
        rect.center().y.round() as i32,
    );
    if p.centres.get(name) == Some(&centre) {
        return;
    }
    p.centres.insert(name.to_owned(), centre);
    let text: String = p
        .centres
        .iter()
        .map(|(n, (x, y))| format!("{n} {x} {y}\n"))
        .collect();
    let _ = p.writer.send(text);
}
