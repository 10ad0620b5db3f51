//! The edit dialog's waveform with egui_kittest: it appears once the clip is decoded with the
//! clip's measured loudness beside it, dragging its handles edits the trim and fades that the
//! board then saves, and in a small window the dialog scrolls with Save still on screen.

use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use voxboard::ui::VoxApp;

use crate::ui_support::{Env, board_with, harness_sized, step_until};

/// Drags the handle named `label` from its centre by `dx` points.
fn drag(h: &mut Harness<'static, VoxApp>, label: &str, dx: f32) {
    let from = h.get_by_label(label).rect().center();
    let to = from + egui::vec2(dx, 0.0);
    h.hover_at(from);
    h.run_steps(1);
    h.drag_at(from);
    h.run_steps(1);
    for i in 1..=6 {
        h.hover_at(from + (to - from) * (i as f32 / 6.0));
        h.run_steps(1);
    }
    h.drop_at(to);
    h.run_steps(2);
}

#[test]
fn dragging_the_waveform_handles_sets_the_stored_trim_and_fades() {
    let env = Env::new(|dir| board_with(dir, &["Tone"], 2.0), false);
    let mut h = env.harness();
    let id = h.state().core.board.tabs[0].sounds[0].id;
    h.get_by_label("Tone").click_secondary();
    h.run_steps(2);
    h.get_by_label("✏ Edit…").click();
    step_until(&mut h, Duration::from_secs(10), "the waveform", |h| {
        h.query_by_label("Start marker").is_some()
    });
    assert!(h.state().core.waveform(id).is_some());
    // The measured loudness: a 0.5 sine reads about -6.7 LUFS, its true peak -6 dBTP.
    let node = h.get_by_label_contains("LUFS · true peak");
    let label = node
        .accesskit_node()
        .label()
        .or_else(|| node.value())
        .unwrap_or_default();
    let lufs: f64 = label
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no loudness in {label:?}"));
    assert!((-7.5..=-6.0).contains(&lufs), "{label}");

    // The markers start at the clip's ends: 2 s across the waveform's width.
    let left = h.get_by_label("Start marker").rect().center().x;
    let right = h.get_by_label("End marker").rect().center().x;
    let per_second = (right - left) / 2.0;
    drag(&mut h, "Start marker", per_second * 0.5);
    drag(&mut h, "End marker", -per_second * 0.25);
    // The fade handles sit on the (moved) markers until dragged inwards.
    drag(&mut h, "Fade-in handle", per_second * 0.2);
    drag(&mut h, "Fade-out handle", -per_second * 0.3);
    h.get_by_label("Save").click();
    h.run_steps(3);
    assert!(h.state().core.flush_saves(Duration::from_secs(5)));

    let saved = env.store().load().board;
    let s = &saved.tabs[0].sounds[0];
    let near = |got: f64, want: f64| (got - want).abs() < 0.03;
    assert!(near(s.trim_start, 0.5), "start {}", s.trim_start);
    assert!(
        s.trim_end.is_some_and(|e| near(e, 1.75)),
        "end {:?}",
        s.trim_end
    );
    assert!(near(s.fade_in, 0.2), "fade in {}", s.fade_in);
    assert!(near(s.fade_out, 0.3), "fade out {}", s.fade_out);
}

/// A window shorter than the dialog with its waveform: the body scrolls, so Save stays on
/// screen (and works), and the mouse wheel brings the waveform's markers into view.
#[test]
fn the_edit_dialog_scrolls_in_a_small_window_with_save_on_screen() {
    let size = egui::vec2(900.0, 420.0);
    let on_screen = |r: egui::Rect| r.min.y >= 0.0 && r.max.y <= size.y;
    let env = Env::new(|dir| board_with(dir, &["Tone"], 2.0), false);
    let mut h = harness_sized(env.app(), size);
    h.get_by_label("Tone").click_secondary();
    h.run_steps(2);
    h.get_by_label("✏ Edit…").click();
    step_until(&mut h, Duration::from_secs(10), "the waveform", |h| {
        h.query_by_label("Start marker").is_some()
    });
    h.run_steps(2);
    let save = h.get_by_label("Save").rect();
    assert!(on_screen(save), "Save off screen: {save:?}");
    let marker = h.get_by_label("End marker").rect();
    assert!(
        !on_screen(marker),
        "the dialog fits anyway ({marker:?}): the test proves nothing at this size"
    );

    h.hover_at(h.get_by_label("Name").rect().center());
    h.run_steps(1);
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, -2000.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: egui::Modifiers::NONE,
    });
    step_until(
        &mut h,
        Duration::from_secs(5),
        "scrolled to the waveform",
        |h| {
            let marker = h.get_by_label("End marker").rect();
            on_screen(marker) && marker.max.y <= h.get_by_label("Save").rect().min.y
        },
    );
    assert_eq!(
        h.get_by_label("Save").rect(),
        save,
        "the buttons do not move"
    );

    h.get_by_label("Save").click();
    h.run_steps(3);
    assert!(
        h.query_by_label("Start marker").is_none(),
        "Save closed the dialog"
    );
}
