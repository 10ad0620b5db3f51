//! Hotkeys: per-sound keys, stop-all and push-to-talk (press and release), system-wide through
//! the `global-hotkey` crate where the platform allows it (X11, Windows, macOS), and inside the
//! window everywhere (the fallback on Wayland, where apps cannot grab keys globally).
//!
//! Registration runs on a thread of its own (the crate's calls wait on its X11 thread), so the
//! UI never waits on it. Conflicts — two actions on one key, a key another program already
//! holds, a key that does not parse — are reported per key for the UI to show.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};

use global_hotkey::hotkey::HotKey;
use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};
use voxboard_board::keys::canonical;

/// The parser lives with the board model (the fuzzer builds it without the GUI stack).
pub use voxboard_board::keys::{Shortcut, parse};

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Sound(u64),
    StopAll,
    PushToTalk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotkeyEvent {
    Pressed(Action),
    Released(Action),
}

/// Whether keys can be grabbed system-wide here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Global,
    WindowOnly(String),
}

pub fn detect_availability() -> Availability {
    if cfg!(target_os = "linux") {
        let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some()
            || std::env::var("XDG_SESSION_TYPE").is_ok_and(|t| t == "wayland");
        if wayland {
            return Availability::WindowOnly(
                "Global hotkeys are not available on Wayland: shortcuts work while the \
                 Voxboard window is focused."
                    .into(),
            );
        }
        if std::env::var_os("DISPLAY").is_none() {
            return Availability::WindowOnly(
                "No X11 display: global hotkeys are off; shortcuts work inside the window.".into(),
            );
        }
    }
    Availability::Global
}

/// Problems per key string as the user typed it.
pub type Problems = HashMap<String, String>;

pub struct Hotkeys {
    availability: Availability,
    to_thread: Option<Sender<Vec<(Action, String)>>>,
    events: Receiver<HotkeyEvent>,
    events_tx: Sender<HotkeyEvent>,
    problems: Arc<Mutex<Problems>>,
    local: Vec<(Action, Shortcut)>,
    local_problems: Problems,
    held: Vec<Action>,
}

impl Hotkeys {
    /// `global`: try system-wide keys (off in tests). `wake` is called from other threads when
    /// a key fires, to repaint the UI.
    pub fn new(global: bool, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (events_tx, events) = channel();
        let problems = Arc::new(Mutex::new(Problems::new()));
        let availability = if global {
            detect_availability()
        } else {
            Availability::WindowOnly("Global hotkeys are off in this run.".into())
        };
        let to_thread = (availability == Availability::Global)
            .then(|| spawn_global(events_tx.clone(), problems.clone(), wake))
            .flatten();
        Self {
            availability,
            to_thread,
            events,
            events_tx,
            problems,
            local: Vec::new(),
            local_problems: Problems::new(),
            held: Vec::new(),
        }
    }

    pub fn availability(&self) -> &Availability {
        &self.availability
    }

    pub fn is_global(&self) -> bool {
        self.to_thread.is_some()
    }

    /// Replaces every binding. Empty key strings are skipped.
    pub fn set_bindings(&mut self, bindings: Vec<(Action, String)>) {
        let bindings: Vec<(Action, String)> = bindings
            .into_iter()
            .filter(|(_, k)| !k.trim().is_empty())
            .collect();
        self.local.clear();
        self.local_problems.clear();
        let mut owner: HashMap<String, (Action, String)> = HashMap::new();
        for (action, keys) in &bindings {
            match parse(keys) {
                Ok(s) => {
                    let canon = canonical(&s);
                    if let Some((_, first)) = owner.get(&canon) {
                        let msg = format!("{keys} is also used by another action");
                        self.local_problems.insert(keys.clone(), msg.clone());
                        self.local_problems.insert(first.clone(), msg);
                        continue;
                    }
                    owner.insert(canon, (*action, keys.clone()));
                    self.local.push((*action, s));
                }
                Err(e) => {
                    self.local_problems.insert(keys.clone(), e);
                }
            }
        }
        if let Some(tx) = &self.to_thread {
            let ok: Vec<(Action, String)> = owner.into_values().collect();
            if tx.send(ok).is_err() {
                self.to_thread = None;
            }
        }
    }

    /// The problem with a key string, if any (parse error, conflict, grabbed elsewhere).
    pub fn problem(&self, keys: &str) -> Option<String> {
        if let Some(p) = self.local_problems.get(keys) {
            return Some(p.clone());
        }
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(keys)
            .cloned()
    }

    pub fn problem_count(&self) -> usize {
        self.local_problems.len()
            + self
                .problems
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
    }

    /// Collects this frame's key events: global ones from the hotkey thread, and — when keys
    /// are not grabbed globally and no text field has focus — the window's own key presses.
    pub fn poll(&mut self, ctx: &egui::Context) -> Vec<HotkeyEvent> {
        if self.to_thread.is_none() && !ctx.egui_wants_keyboard_input() {
            let local = &self.local;
            let held = &mut self.held;
            let tx = &self.events_tx;
            ctx.input(|i| {
                for (action, s) in local {
                    if i.key_pressed(s.key) && i.modifiers.matches_logically(s.modifiers) {
                        if !held.contains(action) {
                            held.push(*action);
                            let _ = tx.send(HotkeyEvent::Pressed(*action));
                        }
                    } else if held.contains(action) && !i.key_down(s.key) {
                        held.retain(|a| a != action);
                        let _ = tx.send(HotkeyEvent::Released(*action));
                    }
                }
            });
        }
        self.events.try_iter().collect()
    }
}

/// Starts the thread that owns the `GlobalHotKeyManager`; `None` if it cannot start.
fn spawn_global(
    events: Sender<HotkeyEvent>,
    problems: Arc<Mutex<Problems>>,
    wake: Arc<dyn Fn() + Send + Sync>,
) -> Option<Sender<Vec<(Action, String)>>> {
    let (tx, rx) = channel::<Vec<(Action, String)>>();
    let ids: Arc<Mutex<HashMap<u32, Action>>> = Arc::default();
    let handler_ids = ids.clone();
    GlobalHotKeyEvent::set_event_handler(Some(move |ev: GlobalHotKeyEvent| {
        let action = handler_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ev.id())
            .copied();
        if let Some(action) = action {
            let _ = events.send(match ev.state() {
                HotKeyState::Pressed => HotkeyEvent::Pressed(action),
                HotKeyState::Released => HotkeyEvent::Released(action),
            });
            wake();
        }
    }));
    std::thread::Builder::new()
        .name("voxboard-hotkeys".into())
        .spawn(move || {
            let manager = match GlobalHotKeyManager::new() {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("global hotkeys unavailable: {e}");
                    return;
                }
            };
            let mut registered: Vec<HotKey> = Vec::new();
            while let Ok(bindings) = rx.recv() {
                for hk in registered.drain(..) {
                    let _ = manager.unregister(hk);
                }
                let mut found = Problems::new();
                let mut map = HashMap::new();
                for (action, keys) in bindings {
                    let hk = match HotKey::from_str(&keys) {
                        Ok(hk) => hk,
                        Err(e) => {
                            found.insert(keys, format!("not a global hotkey: {e}"));
                            continue;
                        }
                    };
                    match manager.register(hk) {
                        Ok(()) => {
                            registered.push(hk);
                            map.insert(hk.id(), action);
                        }
                        Err(e) => {
                            found.insert(keys, format!("another program holds this key ({e})"));
                        }
                    }
                }
                *ids.lock().unwrap_or_else(PoisonError::into_inner) = map;
                *problems.lock().unwrap_or_else(PoisonError::into_inner) = found;
            }
        })
        .ok()
        .map(|_| tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_actions_on_one_key_are_a_conflict() {
        let mut h = Hotkeys::new(false, Arc::new(|| {}));
        h.set_bindings(vec![
            (Action::Sound(1), "Ctrl+A".into()),
            (Action::StopAll, "ctrl+a".into()),
            (Action::Sound(2), "F2".into()),
        ]);
        assert!(h.problem("Ctrl+A").is_some());
        assert!(h.problem("ctrl+a").is_some());
        assert!(h.problem("F2").is_none());
    }
}
