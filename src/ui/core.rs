//! The app's state and actions, shared by every panel: the board and its saver, the sound
//! library, the engine handle and the newest status. Every action here returns at once: it
//! sends a [`Command`], queues a decode, or hands a save to the saver thread.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

mod entrances;
mod playing;

use tokio::sync::watch;

use crate::board::Board;
use crate::board::store::{Saver, Store};
use voxboard_audio::library::{SoundId, SoundLibrary, SoundState};
use voxboard_audio::loudness::Measurement;
use voxboard_audio::waveform::Waveform;
use voxboard_voice::engine::{Command, EngineHandle, Status, VoiceConfig, VoiceError};

/// How long a click waits for its sound to decode before giving up (and saying so).
const PLAY_WAIT: Duration = Duration::from_secs(10);

/// What a play request led to (the UI shows toasts; the control API answers with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayOutcome {
    /// Sent to the engine.
    Playing,
    /// Decoding first; it plays once ready (or a toast says why not).
    Loading,
    /// No such sound on the board.
    Unknown,
    /// No engine runs (no token yet).
    NotConnected,
    /// The file cannot be decoded: why.
    Failed(String),
}

/// A banner the user dismisses.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

pub struct Core {
    pub board: Board,
    pub store: Store,
    saver: Saver,
    pub library: SoundLibrary,
    /// Board sound id → library id.
    lib_ids: HashMap<u64, SoundId>,
    /// Sounds whose file is missing (checked off the UI thread).
    missing: Arc<Mutex<HashSet<u64>>>,
    engine: Option<EngineHandle>,
    status_rx: Option<watch::Receiver<Status>>,
    /// The newest engine status (default while no engine runs).
    pub status: Status,
    /// Sounds still decoding that were asked to play, with when they were asked and the guild
    /// to play into instead of the sound's own targets, if one (entrance sounds).
    pending_play: Vec<(u64, Instant, Option<u64>)>,
    joins: Vec<(u64, Receiver<Result<(), VoiceError>>)>,
    /// Why the last join of a guild was refused.
    pub join_errors: HashMap<u64, String>,
    pub notices: Vec<Notice>,
    /// A short message at the bottom ("Not connected ...").
    pub toast: Option<(String, Instant)>,
    pub ptt_held: bool,
    /// Push-to-talk held through the control API (the app ORs it with the button and hotkey)
    /// until this moment, unless renewed: a controller that crashed or lost its "up" must not
    /// leave the microphone open (`api::PTT_HOLD`).
    pub ptt_remote: Option<Instant>,
    ctx: Option<egui::Context>,
    /// The microphone and monitor, owned by a thread of their own.
    pub devices: super::audio_devices::AudioDevices,
    repaint: Arc<std::sync::OnceLock<egui::Context>>,
    /// The kinds of the last 256 commands sent (for tests and diagnostics).
    pub sent: Vec<&'static str>,
    entrances: entrances::Entrances,
}

impl Core {
    pub fn new(store: Store, board: Board, library: SoundLibrary, notice: Option<String>) -> Self {
        let saver = Saver::spawn(store.clone(), None);
        let repaint: Arc<std::sync::OnceLock<egui::Context>> = Arc::default();
        let hook = repaint.clone();
        let devices = super::audio_devices::AudioDevices::spawn(Arc::new(move || {
            if let Some(ctx) = hook.get() {
                ctx.request_repaint();
            }
        }));
        let mut core = Self {
            board,
            store,
            saver,
            library,
            lib_ids: HashMap::new(),
            missing: Arc::default(),
            engine: None,
            status_rx: None,
            status: Status::default(),
            pending_play: Vec::new(),
            joins: Vec::new(),
            join_errors: HashMap::new(),
            notices: notice
                .into_iter()
                .map(|text| Notice { text, error: true })
                .collect(),
            toast: None,
            ptt_held: false,
            ptt_remote: None,
            ctx: None,
            devices,
            repaint,
            sent: Vec::new(),
            entrances: Default::default(),
        };
        core.sync_library();
        if core.board.settings.api.key.is_fresh() && core.notices.is_empty() {
            // A key made just now: keep it, or the one pasted into a Stream Deck stops working
            // at the next start. Not after a failed load: a file that could not be read or moved
            // aside must not be overwritten behind the user's back.
            core.save();
        }
        core
    }

    /// Asks for a frame (from any thread): how other threads get the UI thread to look at
    /// their channels. Works before the window exists too (then the first frame looks anyway).
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let hook = self.repaint.clone();
        Arc::new(move || {
            if let Some(ctx) = hook.get() {
                ctx.request_repaint();
            }
        })
    }

    /// Hooks repaints to the library and engine once the context exists.
    pub fn attach(&mut self, ctx: &egui::Context) {
        if self.ctx.is_some() {
            return;
        }
        self.ctx = Some(ctx.clone());
        let _ = self.repaint.set(ctx.clone());
        let c = ctx.clone();
        self.library
            .set_on_change(Arc::new(move |_| c.request_repaint()));
        if let Some(rx) = &self.status_rx {
            spawn_status_waker(rx.clone(), ctx.clone());
        }
        self.check_files(
            self.board
                .sounds()
                .map(|s| (s.id, s.path.clone()))
                .collect(),
        );
    }

    /// Registers board sounds the library does not know yet (no file is read).
    pub fn sync_library(&mut self) {
        for s in self.board.sounds() {
            if !self.lib_ids.contains_key(&s.id) {
                let lid = self.library.add(s.path.clone());
                self.lib_ids.insert(s.id, lid);
            }
        }
    }

    pub fn lib_id(&self, id: u64) -> Option<SoundId> {
        self.lib_ids.get(&id).copied()
    }

    pub fn sound_state(&self, id: u64) -> Option<SoundState> {
        self.library.state(self.lib_id(id)?)
    }

    /// The loudness and true peak of what `sound` plays (its trimmed window, as it stands:
    /// the edit dialog passes its draft), once the clip has been decoded.
    pub fn loudness(&self, sound: &crate::board::Sound) -> Option<Measurement> {
        self.library
            .loudness(self.lib_id(sound.id)?, &sound.shape())
    }

    /// The clip's waveform once decoded; asks for the decode otherwise (the edit dialog calls
    /// this every frame: a decode already on its way is not queued twice).
    pub fn waveform(&self, id: u64) -> Option<Arc<Waveform>> {
        let lid = self.lib_id(id)?;
        let waveform = self.library.waveform(lid);
        if waveform.is_none() {
            self.library.request(lid);
        }
        waveform
    }

    pub fn is_missing(&self, id: u64) -> bool {
        self.missing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
    }

    /// Stats the files on a thread (a slow or network drive must not stall a frame).
    fn check_files(&self, files: Vec<(u64, PathBuf)>) {
        let missing = self.missing.clone();
        let ctx = self.ctx.clone();
        let _ = std::thread::Builder::new()
            .name("voxboard-files".into())
            .spawn(move || {
                let gone: Vec<u64> = files
                    .iter()
                    .filter(|(_, p)| !p.is_file())
                    .map(|(id, _)| *id)
                    .collect();
                let mut m = missing.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, _) in &files {
                    m.remove(id);
                }
                m.extend(gone);
                drop(m);
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            });
    }

    pub fn save(&self) {
        self.saver.save(&self.board);
    }

    pub fn flush_saves(&self, timeout: Duration) -> bool {
        self.saver.flush(timeout)
    }

    pub fn save_error(&self) -> Option<String> {
        self.saver.error()
    }

    /// Adds files to a tab; returns how many were added.
    pub fn add_files(&mut self, tab: usize, paths: Vec<PathBuf>) -> usize {
        let mut added = Vec::new();
        for path in paths {
            let id = self.board.add_sound(tab, path.clone());
            added.push((id, path));
        }
        self.sync_library();
        self.check_files(added.clone());
        self.save();
        added.len()
    }

    /// Reads the sound's file again (after it changed, vanished or came back).
    pub fn reload_sound(&mut self, id: u64) {
        if let Some(lid) = self.lib_id(id) {
            self.library.reload(lid);
        }
        if let Some(s) = self.board.sound(id) {
            self.check_files(vec![(id, s.path.clone())]);
        }
    }

    /// Moves a sound to the end of another tab.
    pub fn move_to_tab(&mut self, id: u64, tab: usize) {
        if tab >= self.board.tabs.len() {
            return;
        }
        if let Some(sound) = self.board.remove_sound(id) {
            self.board.tabs[tab].sounds.push(sound);
            self.save();
        }
    }

    pub fn remove_sound(&mut self, id: u64) {
        if let Some(lid) = self.lib_ids.remove(&id) {
            self.library.remove(lid);
        }
        self.board.remove_sound(id);
        self.save();
    }

    /// After an edit: a new path means a new library entry.
    pub fn sound_edited(&mut self, id: u64) {
        let Some(sound) = self.board.sound(id) else {
            return;
        };
        let path = sound.path.clone();
        if let Some(lid) = self.lib_ids.get(&id).copied()
            && self.library.path(lid).as_ref() != Some(&path)
        {
            self.library.remove(lid);
            self.lib_ids.remove(&id);
            self.sync_library();
            self.check_files(vec![(id, path)]);
        }
        self.save();
    }

    // ---- engine ----

    pub fn engine_running(&self) -> bool {
        self.engine.is_some()
    }

    /// Starts (or restarts) the engine; the saved connections are rejoined.
    pub fn start_engine(&mut self, config: VoiceConfig) {
        self.retire_engine();
        match EngineHandle::start(config) {
            Ok(handle) => {
                let rx = handle.status();
                if let Some(ctx) = &self.ctx {
                    spawn_status_waker(rx.clone(), ctx.clone());
                }
                self.status_rx = Some(rx);
                self.entrances.subscribe(&handle, self.ctx.clone());
                self.engine = Some(handle);
                self.apply_mix_settings();
                self.attach_devices();
                let saved: Vec<(u64, u64)> = self
                    .board
                    .settings
                    .connections
                    .iter()
                    .map(|(g, c)| (*g, *c))
                    .collect();
                for (g, c) in saved {
                    self.join(g, c);
                }
                tracing::info!(target: "voxboard::ui", "engine started");
            }
            Err(e) => self.notices.push(Notice {
                text: format!("Could not start the voice engine: {e}"),
                error: true,
            }),
        }
    }

    /// Stops the running engine on a thread of its own (its leaves take a moment), so the UI
    /// goes on at once.
    pub fn retire_engine(&mut self) {
        self.status_rx = None;
        self.status = Status::default();
        if let Some(old) = self.engine.take() {
            let _ = std::thread::Builder::new()
                .name("voxboard-engine-stop".into())
                .spawn(move || old.shutdown(Duration::from_secs(2)));
        }
    }

    /// Leaves every channel and stops the engine (waiting up to `grace` for the leaves).
    pub fn stop_engine(&mut self, grace: Duration) {
        if let Some(engine) = self.engine.take() {
            engine.shutdown(grace);
        }
        self.status_rx = None;
    }

    pub fn send(&mut self, command: Command) {
        if self.sent.len() == 256 {
            self.sent.remove(0);
        }
        self.sent.push(command_name(&command));
        match &self.engine {
            Some(e) => e.send(command),
            None => self.toast("Not connected to Discord: enter your bot token in Settings."),
        }
    }

    pub fn toast(&mut self, text: &str) {
        self.toast = Some((text.to_owned(), Instant::now()));
    }

    pub fn apply_mix_settings(&mut self) {
        let s = self.board.settings.clone();
        if let Some(e) = &self.engine {
            e.send(Command::SetMasterGain(s.master_volume));
            e.send(Command::SetMicGain(s.mic_gain));
            e.send(Command::SetMicTarget(playing::target_of(&s.mic_targets)));
            e.send(Command::SetMonitor {
                gain: if s.monitor { s.monitor_volume } else { 0.0 },
                include_mic: false,
            });
        }
    }

    /// (Re)opens the chosen microphone and monitor output for the running engine.
    pub fn attach_devices(&mut self) {
        if let Some(engine) = &self.engine {
            let s = &self.board.settings;
            self.devices.attach(
                engine.sender(),
                s.input_device.clone(),
                s.output_device.clone(),
                s.monitor,
            );
        }
    }

    /// Takes the newest status if it changed. Returns whether it did.
    pub fn refresh_status(&mut self) -> bool {
        let Some(rx) = &mut self.status_rx else {
            return false;
        };
        if !rx.has_changed().unwrap_or(false) {
            return false;
        }
        self.status = rx.borrow_and_update().clone();
        true
    }

    pub fn join(&mut self, guild_id: u64, channel_id: u64) {
        let (reply, answer) = std::sync::mpsc::channel();
        self.join_errors.remove(&guild_id);
        self.joins.retain(|(g, _)| *g != guild_id);
        self.joins.push((guild_id, answer));
        self.send(Command::Join {
            guild_id,
            channel_id,
            self_mute: false,
            self_deaf: self.board.settings.deafen_bot,
            reply: Some(reply),
        });
    }

    pub fn leave(&mut self, guild_id: u64) {
        self.joins.retain(|(g, _)| *g != guild_id);
        self.send(Command::Leave {
            guild_id,
            reply: None,
        });
    }

    /// Reads join answers without waiting. Returns whether any join is still open.
    pub fn poll_joins(&mut self) -> bool {
        let mut errors = Vec::new();
        self.joins.retain(|(g, rx)| match rx.try_recv() {
            Ok(Ok(())) => false,
            Ok(Err(e)) => {
                errors.push((*g, e.to_string()));
                false
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => true,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => false,
        });
        for (g, e) in errors {
            tracing::warn!(target: "voxboard::ui", guild = g, "join failed: {e}");
            self.join_errors.insert(g, e);
        }
        !self.joins.is_empty()
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Join { .. } => "join",
        Command::Leave { .. } => "leave",
        Command::Play(_) => "play",
        Command::StopAll => "stop_all",
        Command::StopSound { .. } => "stop_sound",
        Command::PushToTalk(_) => "push_to_talk",
        Command::SetMasterGain(_) => "master_gain",
        Command::SetMonitor { .. } => "monitor",
        Command::SetMicGain(_) => "mic_gain",
        Command::SetMicTarget(_) => "mic_target",
        _ => "other",
    }
}

/// Wakes the UI whenever the engine publishes a different status (a few times a second at
/// most; never while nothing changes, so an idle app draws nothing).
fn spawn_status_waker(mut rx: watch::Receiver<Status>, ctx: egui::Context) {
    let _ = std::thread::Builder::new()
        .name("voxboard-status".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
                return;
            };
            rt.block_on(async move {
                while rx.changed().await.is_ok() {
                    ctx.request_repaint();
                }
            });
        });
}
