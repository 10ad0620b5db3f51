//! Helpers for the GUI tests: a temp config dir with a board, a simulator, a kittest harness
//! driving the real app (real engine, real simulator), and polling with deadlines.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use voxboard::board::Board;
use voxboard::board::store::Store;
use voxboard::ui::token::TokenState;
use voxboard::ui::{AppConfig, View, VoxApp};
use voxboard_sim::{SimConfig, Simulator, demo_config};
use voxboard_voice::engine::Phase;

/// Writes a mono 44.1 kHz sine of `freq` Hz lasting `secs`.
pub fn write_tone(path: &Path, freq: f32, secs: f32) {
    voxboard_testkit::write_tones(path, &[(freq, secs)]);
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sim: Option<Simulator>,
}

impl Env {
    /// A config dir holding `board` (gateway pointed at a fresh simulator when `with_sim`).
    pub fn new(make_board: impl FnOnce(&Path) -> Board, with_sim: bool) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut board = make_board(dir.path());
        let sim = with_sim.then(|| Simulator::start(demo_config()).expect("simulator"));
        if let Some(sim) = &sim {
            board.settings.gateway_url = Some(sim.gateway_url());
        }
        Store::new(dir.path()).save(&board).expect("save board");
        Env { dir, sim }
    }

    pub fn store(&self) -> Store {
        Store::new(self.dir.path())
    }

    /// The app as the binary builds it, minus keyring and global hotkeys.
    pub fn app(&self) -> VoxApp {
        VoxApp::new(self.config())
    }

    /// What [`Env::app`] builds the app from (tests add to it, e.g. the control API).
    pub fn config(&self) -> AppConfig {
        let token = if self.sim.is_some() {
            TokenState::demo(SimConfig::TEST_TOKEN)
        } else {
            TokenState::none()
        };
        AppConfig::headless(self.store(), token)
    }

    pub fn harness(&self) -> Harness<'static, VoxApp> {
        harness(self.app())
    }

    /// [`Env::harness`], stepped until the connection to `guild_id` is ready.
    pub fn harness_joined(&self, guild_id: u64) -> Harness<'static, VoxApp> {
        let mut h = self.harness();
        step_until(
            &mut h,
            Duration::from_secs(15),
            "the guild's connection ready",
            |h| {
                h.state()
                    .core
                    .status
                    .connections
                    .iter()
                    .any(|c| c.guild_id == guild_id && c.phase == Phase::Ready)
            },
        );
        h
    }
}

/// The app in a kittest harness, showing the board (without a token the app opens on
/// Settings, which asks for one; the tests go back to the board through the top bar).
pub fn harness(app: VoxApp) -> Harness<'static, VoxApp> {
    harness_sized(app, egui::vec2(1200.0, 760.0))
}

/// [`harness`] in a window of `size` points.
pub fn harness_sized(app: VoxApp, size: egui::Vec2) -> Harness<'static, VoxApp> {
    let mut h = Harness::builder()
        .with_size(size)
        .build_eframe(move |_cc| app);
    h.run_steps(2);
    if h.state().view != View::Board {
        h.get_by_label("Board").click();
        h.run_steps(2);
    }
    h
}

/// Steps the app (real time passes between frames) until `pred` holds; panics after `timeout`.
pub fn step_until(
    h: &mut Harness<'static, VoxApp>,
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&mut Harness<'static, VoxApp>) -> bool,
) {
    let end = Instant::now() + timeout;
    loop {
        h.step();
        if pred(h) {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A board with one tab holding sounds named `names`, each a tone file written into `dir`
/// (440 Hz, 660 Hz, ... lasting `secs`).
pub fn board_with(dir: &Path, names: &[&str], secs: f32) -> Board {
    let mut b = Board::default();
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(format!("{}.wav", name.to_lowercase().replace(' ', "-")));
        write_tone(&path, 440.0 + 220.0 * i as f32, secs);
        let id = b.add_sound(0, path);
        if let Some(s) = b.sound_mut(id) {
            s.name = (*name).to_owned();
        }
    }
    b
}
