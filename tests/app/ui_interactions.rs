//! Board interactions beyond a click: drag to reorder, drop files on the window, in-window
//! hotkeys, push-to-talk held on the button, stop all.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::ui_support::{Env, board_with, step_until};
use egui_kittest::kittest::Queryable;

#[test]
fn dragging_a_tile_reorders_the_tab_and_persists() {
    let env = Env::new(|dir| board_with(dir, &["One", "Two", "Three"], 0.1), false);
    let mut h = env.harness();
    let from = h.get_by_label("One").rect().center();
    let to = h.get_by_label("Three").rect().center();
    h.hover_at(from);
    h.run_steps(1);
    h.drag_at(from);
    h.run_steps(1);
    for i in 1..=8 {
        h.hover_at(from + (to - from) * (i as f32 / 8.0));
        h.run_steps(1);
    }
    h.drop_at(to);
    h.run_steps(3);
    let names: Vec<String> = h.state().core.board.tabs[0]
        .sounds
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names, ["Two", "Three", "One"]);
    assert!(h.state().core.flush_saves(Duration::from_secs(5)));
    let saved = env.store().load().board;
    assert_eq!(saved.tabs[0].sounds[2].name, "One");
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn dropping_files_on_the_window_adds_them() {
    let env = Env::new(|_| voxboard::board::Board::default(), false);
    let file = env.dir.path().join("rimshot_2.wav");
    crate::ui_support::write_tone(&file, 500.0, 0.2);
    let mut h = env.harness();
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(file.clone())));
    h.run_steps(2);
    assert!(
        h.query_by_label("Rimshot 2").is_some(),
        "named after the file"
    );
    assert_eq!(h.state().core.board.tabs[0].sounds[0].path, file);
}

#[test]
fn an_in_window_hotkey_plays_its_sound() {
    let env = Env::new(
        |dir| {
            let mut b = board_with(dir, &["Horn"], 0.5);
            b.tabs[0].sounds[0].hotkey = "F5".into();
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    );
    let mut h = env.harness();
    step_until(&mut h, Duration::from_secs(15), "gateway ready", |h| {
        h.state().core.status.gateway_ready
    });
    h.key_press(egui::Key::F5);
    let id = h.state().core.board.tabs[0].sounds[0].id;
    step_until(&mut h, Duration::from_secs(10), "the hotkey plays", |h| {
        h.state().core.sent.contains(&"play") || h.state().core.progress(id).is_some()
    });
}

#[test]
fn push_to_talk_follows_the_button_and_stop_all_is_sent() {
    let env = Env::new(|_| voxboard::board::Board::default(), false);
    let mut h = env.harness();
    let button = h.get_by_label("🎤 Hold to talk").rect().center();
    h.hover_at(button);
    h.run_steps(1);
    h.drag_at(button);
    h.run_steps(2);
    assert!(h.state().core.ptt_held, "held while the button is down");
    assert!(h.query_by_label("🎤 Talking…").is_some());
    h.drop_at(button);
    h.run_steps(2);
    assert!(!h.state().core.ptt_held, "released with the button");
    assert!(h.query_by_label("no microphone").is_some());

    h.get_by_label("⏹ Stop all").click();
    h.run_steps(1);
    assert!(h.state().core.sent.contains(&"stop_all"));
    assert!(h.state().core.sent.contains(&"push_to_talk"));
}

#[test]
fn tabs_can_be_added_deleted_and_sounds_moved_between_them() {
    let env = Env::new(|dir| board_with(dir, &["Bell"], 0.1), false);
    let mut h = env.harness();
    h.get_by_label("+ Tab").click();
    h.run_steps(2);
    assert_eq!(h.state().core.board.tabs.len(), 2);
    assert_eq!(h.state().board_panel.tab, 1, "the new tab is shown");

    h.get_by_label("Tab 2  0").click_secondary();
    h.run_steps(2);
    h.get_by_label("Delete tab").click();
    h.run_steps(2);
    assert_eq!(h.state().core.board.tabs.len(), 1);

    h.get_by_label("+ Tab").click();
    h.run_steps(2);
    h.get_by_label("Sounds  1").click();
    h.run_steps(2);
    h.get_by_label("Bell").click_secondary();
    h.run_steps(2);
    h.get_by_label("Move to tab").click();
    h.run_steps(2);
    h.get_by_label("Tab 2").click();
    h.run_steps(2);
    let b = &h.state().core.board;
    assert!(b.tabs[0].sounds.is_empty());
    assert_eq!(b.tabs[1].sounds[0].name, "Bell");
}
