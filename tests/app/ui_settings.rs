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
