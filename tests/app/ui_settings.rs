//! The bot token field is masked: what is typed never reaches the accessibility tree, the
//! saved files or the log.

use std::time::Duration;

use crate::ui_support::Env;
use egui_kittest::kittest::{NodeT, Queryable};
use voxboard::board::Board;

const SECRET: &str = "MTIzNDU2.secret-token-for-the-test";

#[test]
fn the_token_field_is_masked_and_never_saved() {
    // A closed loopback port: the engine the token starts must not reach for Discord.
    let env = Env::new(
        |_| {
            let mut b = Board::default();
            b.settings.gateway_url = Some("ws://127.0.0.1:9".into());
            b
        },
        false,
    );
    let mut h = env.harness();
    h.run_steps(2);
    h.get_by_label("Settings").click();
    h.run_steps(2);
    let field = h.get_by_role(egui::accesskit::Role::PasswordInput);
    field.focus();
    h.run_steps(1);
    h.get_by_role(egui::accesskit::Role::PasswordInput)
        .type_text(SECRET);
    h.run_steps(2);

    for node in h.root().children_recursive() {
        let n = node.accesskit_node();
        for text in [n.label(), n.value()].into_iter().flatten() {
            assert!(
                !text.contains(SECRET),
                "token visible in the accessibility tree"
            );
            assert!(!text.contains("secret-token"), "part of the token visible");
        }
    }
    h.get_by_label("Save & connect").click();
    h.run_steps(3);
    assert!(h.state().token.token().is_some(), "the token is in use");

    // Something that saves the board, after the token was entered.
    h.get_by_label("☀ Light").click();
    h.run_steps(2);
    assert!(h.state().core.flush_saves(Duration::from_secs(5)));
    for entry in std::fs::read_dir(env.dir.path())
        .expect("config dir")
        .flatten()
    {
        let bytes = std::fs::read(entry.path()).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET),
            "token written to {}",
            entry.path().display()
        );
    }
}

/// The control API's key in Settings: masked until shown, copied to the clipboard, and
/// renewed only after a confirmation, when the old key stops working at once.
#[test]
fn the_api_key_is_masked_copied_and_renewed() {
    use crate::api::support::ApiApp;
    use voxboard::api::RateLimit;

    let env = Env::new(|_| Board::default(), false);
    let mut app = ApiApp::start(env, RateLimit::default());
    let old = app.key.clone();
    let h = &mut app.h;
    // Tall enough that the Control API card is on screen (clicks go where a pointer would).
    h.set_size(egui::vec2(1200.0, 2000.0));
    h.get_by_label("Settings").click();
    h.run_steps(2);
    let visible = |h: &egui_kittest::Harness<'static, voxboard::ui::VoxApp>, text: &str| {
        h.root().children_recursive().any(|node| {
            let n = node.accesskit_node();
            [n.label(), n.value()]
                .into_iter()
                .flatten()
                .any(|t| t.contains(text))
        })
    };
    assert!(visible(h, &format!("Listening on {}", app.url)));
    assert!(!visible(h, &old), "the key is masked");
    assert!(
        visible(h, &old[old.len() - 4..]),
        "its last four characters tell it apart"
    );
    h.get_by_label("Show").click();
    h.run_steps(2);
    assert!(visible(h, &old), "shown on request");
    h.get_by_label("Hide").click();
    h.run_steps(2);
    assert!(!visible(h, &old));

    h.get_by_label("Copy").click();
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .any(|c| matches!(c, egui::OutputCommand::CopyText(t) if *t == old));
    assert!(copied, "the key went to the clipboard");

    // One click asks; only the confirmation renews.
    h.get_by_label("New key").click();
    h.run_steps(2);
    assert_eq!(h.state().core.board.settings.api.key.expose(), old);
    h.get_by_label("Replace the key").click();
    h.run_steps(2);
    let new = h.state().core.board.settings.api.key.expose().to_owned();
    assert_ne!(new, old);
    assert!(h.state().core.flush_saves(Duration::from_secs(5)));
    let saved = app.env.store().load().board;
    assert_eq!(saved.settings.api.key.expose(), new, "saved with the board");

    let r = app.call_raw("GET", "/v1/sounds", Some(format!("Bearer {old}")), None);
    assert_eq!(r.status, 401, "the old key no longer works");
    let r = app.call_raw("GET", "/v1/sounds", Some(format!("Bearer {new}")), None);
    assert_eq!(r.status, 200, "the new one does");
    let dir = app.runtime.path().to_owned();
    crate::ui_support::step_until(
        &mut app.h,
        Duration::from_secs(10),
        "the runtime file has the new key",
        |_| {
            voxboard::api::runtime_file::read(&dir, voxboard::api::runtime_file::Instance::App)
                .is_ok_and(|i| i.key == new)
        },
    );
}
