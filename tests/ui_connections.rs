//! The connection card follows a real connection through the simulator: it becomes ready, and
//! when the simulator kicks the bot the card says so in plain words.

mod ui_support;

use std::time::Duration;

use egui_kittest::kittest::Queryable;
use ui_support::{Env, step_until};
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
        "the card says kicked",
        |h| h.query_all_by_label_contains("icked").next().is_some(),
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
    assert_ne!(phase, "ready");
    // The other guild's card is there too, with a picker and a Connect button.
    assert!(h.query_by_label("Demo Guild B").is_some());
    assert!(h.query_all_by_label("Connect").count() >= 1);
}
