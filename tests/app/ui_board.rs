//! The board panel against a real engine and an in-process simulator: clicking a sound plays
//! it (the listener hears it) and the button shows progress; search filters; the edit dialog
//! persists.

use std::time::Duration;

use crate::ui_support::{Env, board_with, step_until};
use egui_kittest::kittest::{NodeT, Queryable};
use voxboard::board::store::Store;

#[test]
fn clicking_a_sound_plays_it_and_the_button_shows_progress() {
    let env = Env::new(
        |dir| {
            let mut b = board_with(dir, &["Tone"], 1.5);
            b.settings.connections.insert(100, 1002);
            b
        },
        true,
    );
    let mut h = env.harness_joined(100);
    let id = h.state().core.board.tabs[0].sounds[0].id;
    h.get_by_label("Tone").click();
    step_until(
        &mut h,
        Duration::from_secs(10),
        "progress on the button",
        |h| h.state().core.progress(id).is_some(),
    );
    assert!(h.state().core.sent.contains(&"play"));
    // The button itself carries the progress (as its value) while it plays.
    h.step();
    let value = h
        .get_by_label("Tone")
        .accesskit_node()
        .numeric_value()
        .expect("a playing button has a progress value");
    assert!((0.0..=100.0).contains(&value), "progress {value}");

    let sim = env.sim.as_ref().expect("sim");
    step_until(
        &mut h,
        Duration::from_secs(10),
        "the listener hears it",
        |_| sim.heard(100).audio_frames() >= 50,
    );
    step_until(&mut h, Duration::from_secs(10), "progress bar gone", |h| {
        h.state().core.progress(id).is_none()
    });
    // A soundboard joins deafened unless the streamer says otherwise.
    let deafened = sim.events().iter().any(|e| {
        matches!(
            e,
            voxboard_sim::SimEvent::VoiceStateRequest {
                guild_id: 100,
                channel_id: Some(1002),
                self_deaf: true
            }
        )
    });
    assert!(deafened, "op 4 was not deafened: {:#?}", sim.events());
}

#[test]
fn search_filters_by_name() {
    let env = Env::new(
        |dir| board_with(dir, &["Airhorn", "Applause", "Drum roll"], 0.1),
        false,
    );
    let mut h = env.harness();
    h.run_steps(2);
    assert!(h.query_by_label("Drum roll").is_some());
    h.state_mut().board_panel.search = "AIR".into();
    h.run_steps(2);
    assert!(h.query_by_label("Airhorn").is_some());
    assert!(h.query_by_label("Applause").is_none());
    assert!(h.query_by_label("Drum roll").is_none());
    h.state_mut().board_panel.search = "nothing like it".into();
    h.run_steps(2);
    assert!(h.query_by_label_contains("No sound matches").is_some());
}

#[test]
fn the_edit_dialog_persists() {
    let env = Env::new(|dir| board_with(dir, &["Tone"], 0.1), false);
    let mut h = env.harness();
    h.run_steps(2);
    h.get_by_label("Tone").click_secondary();
    h.run_steps(2);
    h.get_by_label("✏ Edit…").click();
    h.run_steps(2);
    // The dialog asks for the clip; its waveform appears once decoded and moves what is below
    // it, so a click aimed before that lands on the old place (seen once under a loaded suite).
    step_until(
        &mut h,
        Duration::from_secs(15),
        "the clip is decoded",
        |h| {
            let core = &h.state().core;
            let id = core.board.tabs[0].sounds[0].id;
            core.lib_id(id).is_some_and(|lid| {
                matches!(
                    core.library.state(lid),
                    Some(voxboard_audio::library::SoundState::Ready { .. })
                )
            })
        },
    );
    let name = h.get_by(|n| {
        n.role() == egui::accesskit::Role::TextInput && n.value().as_deref() == Some("Tone")
    });
    name.focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run_steps(1);
    h.event(egui::Event::Text("Big horn".into()));
    h.run_steps(2);
    h.get_by_label("Loop").click();
    h.run_steps(2);
    h.get_by_label("Save").click();
    h.run_steps(3);
    assert!(
        h.query_by_label("Big horn").is_some(),
        "the board shows the new name"
    );
    assert!(h.state().core.flush_saves(Duration::from_secs(5)));

    let reloaded = Store::new(env.dir.path()).load();
    assert!(reloaded.notice.is_none());
    let s = &reloaded.board.tabs[0].sounds[0];
    assert_eq!(s.name, "Big horn");
    assert!(s.looped);
}
