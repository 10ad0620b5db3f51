//! The connection card follows a real connection through the simulator: it becomes ready, and
//! when the simulator kicks the bot the card says so in plain words.

use std::time::Duration;

use crate::ui_support::{Env, step_until};
use egui_kittest::kittest::Queryable;
use voxboard::board::Board;

#[test]
fn the_card_follows_the_phase_and_shows_why_it_closed() {
    let env = Env::new(
        |_| {
            let mut b = Board::default();
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    );
    let mut h = env.harness();
    step_until(
        &mut h,
        Duration::from_secs(15),
        "the card shows ready",
        |h| h.query_by_label("ready").is_some(),
    );
    assert!(h.query_by_label("Demo Guild A").is_some());
    assert!(
        h.query_all_by_label_contains("aead_").next().is_some(),
        "encryption mode shown"
    );
    assert!(h.query_by_label("Disconnect").is_some());

    env.sim.as_ref().expect("sim").kick(100);
    step_until(
        &mut h,
        Duration::from_secs(15),
        "the card says someone disconnected the bot",
        |h| {
            h.query_all_by_label_contains("by someone in the server")
                .next()
                .is_some()
        },
    );
    let phase = h
        .state()
        .core
        .status
        .connections
        .iter()
        .find(|c| c.guild_id == 100)
        .map(|c| c.phase)
        .expect("connection");
    assert_ne!(phase, voxboard_voice::engine::Phase::Ready);
    // The other guild's card is there too, with a picker and a Connect button.
    assert!(h.query_by_label("Demo Guild B").is_some());
    assert!(h.query_all_by_label("Connect").count() >= 1);
}

/// When the gateway cannot be reached the panel says why while it retries: here the gateway's
/// TLS certificate is not one the app trusts.
#[test]
fn the_panel_says_why_the_gateway_is_retrying() {
    use voxboard::board::store::Store;
    use voxboard_sim::SimConfig;

    let (sim, _) = voxboard_testkit::tls_sim();
    let dir = tempfile::tempdir().unwrap();
    let mut board = Board::default();
    board.settings.gateway_url = Some(sim.gateway_url());
    Store::new(dir.path()).save(&board).unwrap();
    let app = voxboard::ui::VoxApp::new(voxboard::ui::AppConfig::headless(
        Store::new(dir.path()),
        voxboard::ui::token::TokenState::demo(SimConfig::TEST_TOKEN),
    ));
    let mut h = crate::ui_support::harness(app);
    step_until(
        &mut h,
        Duration::from_secs(10),
        "the panel names the TLS failure",
        |h| {
            h.query_all_by_label_contains("Retrying: TLS handshake failed")
                .next()
                .is_some()
        },
    );
    assert!(h.query_by_label("Connecting to Discord…").is_some());
}
