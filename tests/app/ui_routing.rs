//! The routing matrix against a real engine and simulator: ticks edit each sound's targets,
//! and each guild's listener then hears only the sounds routed to it.

use std::time::Duration;

use egui_kittest::kittest::Queryable;
use voxboard_testkit::heard_tones;

use crate::ui_support::{Env, board_with, step_until};

#[test]
fn the_matrix_routes_each_sound_to_its_guilds_only() {
    let env = Env::new(
        |dir| {
            let mut b = board_with(dir, &["Low", "High"], 1.0);
            b.settings.connections.insert(100, 1002);
            b.settings.connections.insert(101, 2002);
            b
        },
        true,
    );
    let sim = env.sim.as_ref().expect("sim");
    let mut h = env.harness();
    step_until(&mut h, Duration::from_secs(15), "both guilds ready", |h| {
        let c = &h.state().core.status.connections;
        c.len() == 2 && c.iter().all(|c| c.phase == "ready")
    });
    h.get_by_label("Routing").click();
    h.run_steps(2);
    // Low (440 Hz) only into guild A, High (660 Hz) only into guild B.
    h.get_by_label("Low → Demo Guild B").click();
    h.run_steps(2);
    h.get_by_label("High → Demo Guild A").click();
    h.run_steps(2);
    let board = &h.state().core.board;
    assert_eq!(board.tabs[0].sounds[0].targets, [100]);
    assert_eq!(board.tabs[0].sounds[1].targets, [101]);

    let ids: Vec<u64> = board.tabs[0].sounds.iter().map(|s| s.id).collect();
    for id in &ids {
        h.state_mut().core.play(*id);
    }
    step_until(&mut h, Duration::from_secs(10), "both heard", |h| {
        sim.heard(100).audio_frames() >= 45
            && sim.heard(101).audio_frames() >= 45
            && ids.iter().all(|id| h.state().core.progress(*id).is_none())
    });
    let tones = |g| -> Vec<f32> { heard_tones(sim, g).iter().map(|t| t.0).collect() };
    assert_eq!(
        tones(100),
        [440.0],
        "guild A heard {:?}",
        heard_tones(sim, 100)
    );
    assert_eq!(
        tones(101),
        [660.0],
        "guild B heard {:?}",
        heard_tones(sim, 101)
    );
    assert!(h.state().core.flush_saves(Duration::from_secs(5)));
    assert_eq!(env.store().load().board.tabs[0].sounds[1].targets, [101]);
}
