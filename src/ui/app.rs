//! The eframe app: wires the panels to the [`Core`], polls the engine, the library, the
//! hotkeys and the keyring without ever waiting on them, and repaints only when something
//! changed (status, decode, log line, input) — an idle board draws nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui::{Panel, RichText};

use super::board_panel::{BoardAction, BoardPanel};
use super::connections::ConnectionsPanel;
use super::core::{Core, Notice};
use super::demo::Demo;
use super::edit_dialog::{EditDialog, Outcome};

mod chrome;
mod gateway_banner;
use super::log::{LogBuffer, LogPanel};
use super::settings_panel::{SettingsAction, SettingsPanel};
use super::style;
use super::token::TokenState;
use crate::api::{ApiOptions, ApiServer};
use crate::board::hotkeys::{Action, HotkeyEvent, Hotkeys};
use crate::board::store::Store;
use crate::board::trust::TrustedGateways;
use voxboard_audio::library::{LibraryConfig, SoundLibrary};
use voxboard_voice::discord::ws::DISCORD_GATEWAY;
use voxboard_voice::engine::VoiceConfig;

pub struct AppConfig {
    pub store: Store,
    pub token: TokenState,
    /// Grab hotkeys system-wide where possible (off in tests).
    pub global_hotkeys: bool,
    pub exit_after: Option<Duration>,
    pub demo: Option<Demo>,
    pub log: LogBuffer,
    pub library: LibraryConfig,
    /// When the process started, for the first-frame measurement.
    pub started: Instant,
    /// Run the control API (if the board's settings enable it); `None`: no API.
    pub api: Option<ApiOptions>,
}

impl AppConfig {
    /// A config for tests and embedding: no keyring, no global hotkeys.
    pub fn headless(store: Store, token: TokenState) -> Self {
        Self {
            store,
            token,
            global_hotkeys: false,
            exit_after: None,
            demo: None,
            log: LogBuffer::default(),
            library: LibraryConfig::default(),
            started: Instant::now(),
            api: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Board,
    Routing,
    Settings,
    Log,
}

pub struct VoxApp {
    pub core: Core,
    pub view: View,
    pub board_panel: BoardPanel,
    edit: Option<EditDialog>,
    connections: ConnectionsPanel,
    settings: SettingsPanel,
    log_panel: LogPanel,
    routing: super::routing_panel::RoutingPanel,
    log: LogBuffer,
    pub token: TokenState,
    hotkeys: Hotkeys,
    global_hotkeys: bool,
    hotkeys_dirty: bool,
    engine_generation: u64,
    demo: Option<Demo>,
    started: Instant,
    /// Process start to the end of the first `ui` call.
    pub first_frame: Option<Duration>,
    exit_at: Option<Instant>,
    exit_after: Option<Duration>,
    attached: bool,
    /// The board folder's lock, held for the app's life ([`Store::claim`]).
    _board_lock: Option<std::fs::File>,
    /// Another app holds this board: read-only, no engine, no control API.
    pub second_instance: bool,
    asked_for_token: bool,
    finished: bool,
    preloaded: bool,
    ptt_button: bool,
    ptt_key: bool,
    api: Option<ApiServer>,
    /// Gateway URLs the user allowed to get the token (`board::trust`).
    trusted: TrustedGateways,
    /// A board's gateway URL waiting for the user's yes before the token is sent there.
    pub unconfirmed_gateway: Option<String>,
}

impl VoxApp {
    pub fn new(config: AppConfig) -> Self {
        let claim = config.store.claim();
        let second_instance = matches!(claim, Ok(None));
        if let Err(e) = &claim {
            tracing::warn!("could not lock the board folder: {e}");
        }
        let loaded = config.store.load();
        let trusted = TrustedGateways::load(config.store.dir());
        let library = SoundLibrary::new(config.library);
        let mut core = Core::new(config.store, loaded.board, library, loaded.notice);
        if second_instance {
            core.notices.push(Notice {
                text: format!(
                    "Voxboard is already running with this board ({}). This window is read-only \
                     and does not connect to Discord, so the two do not fight over the bot or \
                     the file: use the other one, or close it and start again.",
                    core.store.dir().display()
                ),
                error: true,
            });
        }
        let api = config
            .api
            .filter(|_| core.board.settings.api.enabled && !second_instance)
            .and_then(|options| {
                match ApiServer::start(&options, &core.board.settings.api, core.waker()) {
                    Ok(server) => Some(server),
                    Err(e) => {
                        tracing::warn!(target: "voxboard::api", "control API not started: {e:#}");
                        core.notices.push(Notice {
                            text: format!("The control API could not start: {e:#}"),
                            error: true,
                        });
                        None
                    }
                }
            });
        Self {
            core,
            view: View::Board,
            board_panel: BoardPanel::default(),
            edit: None,
            connections: ConnectionsPanel::default(),
            settings: SettingsPanel::default(),
            log_panel: LogPanel::new(config.log.clone()),
            routing: Default::default(),
            log: config.log,
            token: config.token,
            hotkeys: Hotkeys::new(false, std::sync::Arc::new(|| {})),
            global_hotkeys: config.global_hotkeys,
            hotkeys_dirty: true,
            engine_generation: 0,
            demo: config.demo,
            started: config.started,
            first_frame: None,
            exit_at: None,
            exit_after: config.exit_after,
            attached: false,
            _board_lock: claim.ok().flatten(),
            second_instance,
            asked_for_token: false,
            finished: false,
            preloaded: false,
            ptt_button: false,
            ptt_key: false,
            api,
            trusted,
            unconfirmed_gateway: None,
        }
    }

    /// The control API's address, while it runs.
    pub fn api_url(&self) -> Option<&str> {
        self.api.as_ref().map(ApiServer::url)
    }

    /// Push-to-talk is held while the button, the hotkey or the control API holds it.
    fn ptt_wanted(&self) -> bool {
        self.ptt_button || self.ptt_key || self.core.ptt_remote.is_some()
    }

    /// Everything that is not drawing: engine, token, decodes, hotkeys, dropped files.
    fn tick(&mut self, ctx: &egui::Context) {
        if !self.attached {
            // First call: hook the repaint sources to this context.
            self.attached = true;
            self.core.attach(ctx);
            self.log.set_repaint(ctx.clone());
            let c = ctx.clone();
            self.hotkeys = Hotkeys::new(
                self.global_hotkeys,
                std::sync::Arc::new(move || c.request_repaint()),
            );
            self.hotkeys_dirty = true;
            self.exit_at = self.exit_after.map(|d| Instant::now() + d);
        }
        if self.token.poll() {
            ctx.request_repaint();
        }
        if !self.asked_for_token && self.token.looked_up && self.token.token().is_none() {
            // No token anywhere: the settings panel asks for it.
            self.asked_for_token = true;
            self.view = View::Settings;
        }
        if self.token.busy() {
            ctx.request_repaint_after(Duration::from_millis(200));
        }
        if self.token.generation != self.engine_generation {
            self.engine_generation = self.token.generation;
            self.restart_engine();
        }
        self.core.refresh_status();
        let mut busy = self.core.poll_joins();
        self.core.poll_entrances();
        busy |= self.core.poll_pending_plays();
        if busy {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        if self.hotkeys_dirty {
            self.hotkeys_dirty = false;
            self.hotkeys.set_bindings(self.bindings());
        }
        for ev in self.hotkeys.poll(ctx) {
            match ev {
                HotkeyEvent::Pressed(Action::Sound(id)) => {
                    self.core.play(id);
                }
                HotkeyEvent::Pressed(Action::StopAll) => self.core.stop_all(),
                HotkeyEvent::Pressed(Action::PushToTalk) => self.ptt_key = true,
                HotkeyEvent::Released(Action::PushToTalk) => self.ptt_key = false,
                HotkeyEvent::Released(_) => {}
            }
        }
        if let Some(api) = &self.api
            && crate::api::answer_calls(api, &mut self.core)
        {
            ctx.request_repaint();
        }
        if let Some(until) = self.core.ptt_remote {
            let now = Instant::now();
            if now >= until {
                tracing::info!(target: "voxboard::api", "push-to-talk held over the API ran out; released");
                self.core.ptt_remote = None;
            } else {
                ctx.request_repaint_after(until - now);
            }
        }
        // Here as well as in the transport bar: `ui` is not called while the window is hidden,
        // and a Stream Deck must hold push-to-talk for a minimised app too.
        self.core.push_to_talk(self.ptt_wanted());
        if let Some(api) = &self.api {
            api.publish_events(&self.core);
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            let n = self.core.add_files(self.board_panel.tab, dropped);
            self.core
                .toast(&format!("Added {n} sound{}", if n == 1 { "" } else { "s" }));
            self.hotkeys_dirty = true;
        }
        if let Some((_, at)) = &self.core.toast {
            let left = Duration::from_secs(4).saturating_sub(at.elapsed());
            if left.is_zero() {
                self.core.toast = None;
            } else {
                ctx.request_repaint_after(left);
            }
        }
        if let Some(at) = self.exit_at {
            let now = Instant::now();
            if now >= at {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                ctx.request_repaint_after(at - now);
            }
        }
    }

    /// A new random key, saved with the board and in force at once.
    fn renew_api_key(&mut self) {
        let key = crate::api::ApiKey::generate();
        self.core.board.settings.api.key = key.clone();
        self.core.save();
        if let Some(api) = &self.api {
            api.renew_key(&key);
        }
        self.core
            .toast("New API key: paste it into your tools again");
    }

    fn restart_engine(&mut self) {
        // A second window on the same board never connects: the first one owns the bot.
        if self.token.token().is_none() || self.second_instance {
            self.core.retire_engine();
            return;
        }
        let url = self
            .core
            .board
            .settings
            .gateway_url
            .clone()
            .unwrap_or_else(|| DISCORD_GATEWAY.to_owned());
        if !self.gateway_confirmed(&url) {
            return;
        }
        self.unconfirmed_gateway = None;
        let Some(token) = self.token.token() else {
            return;
        };
        let mut config = VoiceConfig::new(voxboard_voice::discord::ws::Token::new(token.expose()));
        if let Some(rest) = &self.core.board.settings.rest_url {
            // The REST API gets the token too: only on the host of the gateway the user
            // confirmed (the demo's simulator), never a second, unconfirmed place.
            let host = |u: &str| {
                url::Url::parse(u)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
            };
            if host(rest).is_some() && host(rest) == host(&url) {
                config.rest_url = rest.clone();
            } else {
                tracing::warn!("ignoring the board's REST URL: not on the gateway's host");
            }
        }
        config.gateway_url = url;
        self.core.start_engine(config);
    }

    fn bindings(&self) -> Vec<(Action, String)> {
        let s = &self.core.board.settings;
        let mut b: Vec<(Action, String)> = self
            .core
            .board
            .sounds()
            .map(|s| (Action::Sound(s.id), s.hotkey.clone()))
            .collect();
        b.push((Action::StopAll, s.stop_all_key.clone()));
        b.push((Action::PushToTalk, s.push_to_talk_key.clone()));
        b
    }

    /// Leaves the channels, flushes the board to disk, writes the demo report. Idempotent.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        // First, so no request arrives while the app winds down and CLIs stop finding it.
        if let Some(mut api) = self.api.take() {
            api.stop();
        }
        self.core.stop_all();
        // Let the five silence frames go out so listeners hear a clean end.
        let deadline = Instant::now() + Duration::from_millis(1500);
        std::thread::sleep(Duration::from_millis(60));
        while Instant::now() < deadline {
            self.core.refresh_status();
            if !self.core.status.connections.iter().any(|c| c.speaking) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.core.flush_saves(Duration::from_secs(2)) {
            tracing::warn!(target: "voxboard::ui", "the board may not have been saved");
        }
        self.core.stop_engine(Duration::from_secs(2));
        if let Some(demo) = &self.demo
            && let Err(e) = demo.write_report(self.first_frame)
        {
            eprintln!("voxboard: could not write the demo report: {e:#}");
        }
    }

    pub fn demo(&self) -> Option<&Demo> {
        self.demo.as_ref()
    }
}

impl eframe::App for VoxApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.tick(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if self.first_frame.is_none() {
            style::apply(ui.ctx(), self.core.board.settings.theme);
        }
        let bar = egui::Frame::new()
            .fill(ui.visuals().panel_fill)
            .inner_margin(egui::Margin::symmetric(14, 8));
        Panel::top("top").frame(bar).show(ui, |ui| self.top_bar(ui));
        Panel::bottom("transport")
            .frame(bar.fill(ui.visuals().extreme_bg_color))
            .show(ui, |ui| self.transport(ui));
        Panel::right("connections")
            .resizable(true)
            .default_size(330.0)
            .size_range(260.0..=520.0)
            .frame(
                egui::Frame::new()
                    .fill(ui.visuals().panel_fill)
                    .inner_margin(12),
            )
            .show(ui, |ui| self.connections.ui(ui, &mut self.core));
        let central = egui::Frame::new()
            .fill(ui.visuals().window_fill)
            .inner_margin(egui::Margin::same(14));
        egui::CentralPanel::default().frame(central).show(ui, |ui| {
            self.gateway_confirmation(ui);
            self.notices(ui);
            match self.view {
                View::Board => {
                    if let Some(BoardAction::Edit(id)) = self.board_panel.ui(ui, &mut self.core)
                        && let Some(s) = self.core.board.sound(id)
                    {
                        self.edit = Some(EditDialog::new(s));
                    }
                }
                View::Settings => {
                    let hk = &self.hotkeys;
                    let problem = |k: &str| hk.problem(k);
                    let availability = hk.availability().clone();
                    let api_url = self.api.as_ref().map(ApiServer::url);
                    match self.settings.ui(
                        ui,
                        &mut self.core,
                        &mut self.token,
                        &availability,
                        &problem,
                        api_url,
                    ) {
                        Some(SettingsAction::Reconnect) => {
                            // Typed in and applied by the user: that is the confirmation.
                            if let Some(url) = &self.core.board.settings.gateway_url {
                                self.trusted.allow(url);
                            }
                            self.restart_engine();
                        }
                        Some(SettingsAction::Rebind) => self.hotkeys_dirty = true,
                        Some(SettingsAction::RenewApiKey) => self.renew_api_key(),
                        None => {}
                    }
                }
                View::Routing => self.routing.ui(ui, &mut self.core),
                View::Log => self.log_panel.ui(ui),
            }
        });
        if let Some(edit) = &mut self.edit {
            let problem = self
                .core
                .board
                .sound(edit.sound_id())
                .and_then(|s| self.hotkeys.problem(&s.hotkey));
            if let Outcome::Closed = edit.ui(ui.ctx(), &mut self.core, problem) {
                self.edit = None;
                self.hotkeys_dirty = true;
            }
        }
        if ui.ctx().input(|i| !i.raw.hovered_files.is_empty()) {
            drop_overlay(ui.ctx());
        }
        if self.first_frame.is_none() {
            let t = self.started.elapsed();
            self.first_frame = Some(t);
            let n = self.core.board.sounds().count();
            tracing::info!(target: "voxboard::ui", "first frame after {} ms ({n} sounds)", t.as_millis());
            println!(
                "voxboard: first frame after {} ms ({n} sounds on the board)",
                t.as_millis()
            );
        } else if !self.preloaded {
            // After the first frame: decode what is on screen and hotkeyed, in the background.
            self.preloaded = true;
            let mut ids = self.board_panel.visible.clone();
            ids.extend(
                self.core
                    .board
                    .sounds()
                    .filter(|s| !s.hotkey.is_empty())
                    .map(|s| s.id),
            );
            self.core.preload(&ids);
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.finish();
    }
}

impl Drop for VoxApp {
    fn drop(&mut self) {
        self.finish();
    }
}

fn drop_overlay(ctx: &egui::Context) {
    let screen = ctx.content_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop-overlay"),
    ));
    painter.rect_filled(screen, 0, egui::Color32::from_black_alpha(160));
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        "Drop to add sounds",
        egui::FontId::proportional(28.0),
        egui::Color32::WHITE,
    );
}
