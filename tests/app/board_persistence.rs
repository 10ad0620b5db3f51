//! Persistence: a damaged board file is moved aside with its bytes kept, the app starts and
//! says so; saves are atomic and never contain the token.

use crate::ui_support::harness;
use egui_kittest::kittest::Queryable;
use voxboard::board::store::Store;
use voxboard::ui::token::TokenState;
use voxboard::ui::{AppConfig, VoxApp};

#[test]
fn a_corrupt_board_is_kept_as_bak_and_the_user_is_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let bad = b"{ \"tabs\": [ { \"name\": \"Memes\", \"sounds\": [ oops";
    std::fs::write(store.path(), bad).expect("write");

    let app = VoxApp::new(AppConfig::headless(store.clone(), TokenState::none()));
    let mut h = harness(app);
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("could not be read").is_some(),
        "a visible notice"
    );
    assert_eq!(std::fs::read(store.backup_path()).expect("bak"), bad);
    assert!(!store.path().exists() || std::fs::read(store.path()).expect("read") != bad);
    assert_eq!(
        h.state().core.board.tabs.len(),
        1,
        "started with an empty board"
    );
}

#[test]
fn missing_sound_files_stay_on_the_board_and_are_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let mut board = voxboard::board::Board::default();
    board.add_sound(0, dir.path().join("gone.wav"));
    store.save(&board).expect("save");

    let app = VoxApp::new(AppConfig::headless(store.clone(), TokenState::none()));
    let mut h = harness(app);
    let id = board.tabs[0].sounds[0].id;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !h.state().core.is_missing(id) {
        assert!(std::time::Instant::now() < end, "never flagged as missing");
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run_steps(2);
    assert!(h.query_by_label("Gone").is_some(), "still on the board");
    assert!(
        h.state()
            .core
            .flush_saves(std::time::Duration::from_secs(2))
    );
    assert_eq!(store.load().board.tabs[0].sounds.len(), 1);
}

/// Two apps on one board would overwrite each other's saves and fight over the bot: the second
/// opens read-only, says so, and neither connects nor starts the control API.
#[test]
fn a_second_app_on_the_same_board_is_read_only_and_stays_offline() {
    use crate::ui_support::{Env, step_until};
    use std::time::Duration;
    let env = Env::new(|_| voxboard::board::Board::default(), true);
    let first = env.app();
    assert!(first.core.flush_saves(Duration::from_secs(5)));
    let before = std::fs::read(env.store().path()).unwrap();
    let mut second = harness(env.app());
    second.run_steps(2);
    assert!(second.state().second_instance);
    assert!(
        second
            .query_by_label_contains("already running with this board")
            .is_some(),
        "a visible notice"
    );
    assert!(
        env.store().claim().unwrap().is_none(),
        "the first still holds it"
    );
    assert!(
        !second.state().core.engine_running(),
        "the second connected"
    );
    second.state_mut().core.board.settings.monitor = !second.state().core.board.settings.monitor;
    second.state_mut().core.save();
    second.state().core.flush_saves(Duration::from_secs(1));
    assert_eq!(
        std::fs::read(env.store().path()).unwrap(),
        before,
        "the second wrote the board"
    );

    // The first one connects as usual; once it is gone, the board is free again.
    let mut first = harness(first);
    step_until(
        &mut first,
        Duration::from_secs(10),
        "the first app connects",
        |h| h.state().core.engine_running(),
    );
    drop(first);
    drop(second);
    assert!(
        env.store().claim().unwrap().is_some(),
        "the lock outlived both apps"
    );
}
