//! A gateway URL that came in a board file gets the bot token only once the user allows it; the
//! answer is remembered per URL outside the board file.

use std::time::Duration;

use crate::ui_support::{Env, harness, step_until};
use egui_kittest::kittest::Queryable;
use voxboard::board::Board;
use voxboard::board::trust;
use voxboard::ui::VoxApp;
use voxboard::ui::token::TokenState;
use voxboard_sim::{SimConfig, SimEvent, Simulator};

fn main_connections(sim: &Simulator) -> usize {
    sim.events()
        .iter()
        .filter(|e| matches!(e, SimEvent::MainConnected { .. }))
        .count()
}

/// The app with a token of the user's own (not the demo's), on the board file in `env`.
fn app_with_own_token(env: &Env) -> VoxApp {
    let mut config = env.config();
    config.token = TokenState::none();
    config.token.enter(SimConfig::TEST_TOKEN.into());
    VoxApp::new(config)
}

#[test]
fn a_board_gateway_gets_the_token_only_after_the_user_allows_it_and_that_is_remembered() {
    let env = Env::new(|_| Board::default(), true);
    let sim = env.sim.as_ref().expect("simulator");
    let question = format!(
        "This board sends your bot token to {} — allow?",
        sim.gateway_url()
    );

    let mut h = harness(app_with_own_token(&env));
    h.run_steps(3);
    h.get_by_label(&question);
    // Frames go by with real time between them; nothing may connect while the banner asks.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
    assert_eq!(main_connections(sim), 0, "the token went out before a yes");
    assert!(h.state().unconfirmed_gateway.is_some());

    h.get_by_label("Allow").click();
    step_until(
        &mut h,
        Duration::from_secs(15),
        "the gateway is ready",
        |h| h.state().core.status.gateway_ready,
    );
    assert!(h.query_by_label(&question).is_none(), "the banner stays");
    drop(h);
    let board = std::fs::read_to_string(env.store().path()).unwrap();
    assert!(
        !board.contains("trusted"),
        "the approval is not kept in the board file: {board}"
    );
    let trusted = env.dir.path().join(trust::FILE_NAME);
    let before = main_connections(sim);

    // Started again: the approval (written on a thread) holds, nothing asks.
    step_until_file(&trusted);
    let mut h = harness(app_with_own_token(&env));
    step_until(
        &mut h,
        Duration::from_secs(15),
        "connected without asking",
        |h| h.state().core.status.gateway_ready,
    );
    assert!(h.query_by_label(&question).is_none());
    assert!(main_connections(sim) > before);
}

fn step_until_file(path: &std::path::Path) {
    for _ in 0..500 {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains("ws://")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} was never written", path.display());
}
