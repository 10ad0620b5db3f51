//! The banner that asks before the bot token goes to a gateway URL a board file named
//! (`board::trust` says why and where the answer is kept).

use egui::RichText;

use super::VoxApp;
use crate::board::trust;
use crate::ui::settings_panel::SettingsPanel;
use crate::ui::style;
use crate::ui::token::Source;

impl VoxApp {
    /// Whether the token may go to `url` now; if not, the engine stays off and the banner asks.
    pub(super) fn gateway_confirmed(&mut self, url: &str) -> bool {
        // The demo's token is the simulator's public one; any other token goes to a URL a board
        // file named only once the user said yes.
        let confirmed = trust::is_default(url)
            || self.token.source() == Some(Source::Demo)
            || self.trusted.contains(url);
        if !confirmed {
            tracing::info!(target: "voxboard::ui", "waiting for the user to allow the gateway {url}");
            self.core.retire_engine();
            self.unconfirmed_gateway = Some(url.to_owned());
        }
        confirmed
    }

    /// The banner that asks before the token goes to a gateway URL the board file named.
    pub(super) fn gateway_confirmation(&mut self, ui: &mut egui::Ui) {
        let Some(url) = self.unconfirmed_gateway.clone() else {
            return;
        };
        let answer = ask(ui, &url);
        match answer {
            Some(true) => {
                self.trusted.allow(&url);
                self.restart_engine();
            }
            Some(false) => {
                self.core.board.settings.gateway_url = None;
                self.core.save();
                self.settings = SettingsPanel::default();
                self.restart_engine();
            }
            None => {}
        }
    }
}

/// Draws the question; `Some(true)` when the user allows `url`, `Some(false)` for Discord instead.
fn ask(ui: &mut egui::Ui, url: &str) -> Option<bool> {
    let mut answer = None;
    egui::Frame::new()
        .fill(ui.visuals().faint_bg_color)
        .stroke(egui::Stroke::new(1.0, style::BAD))
        .corner_radius(8)
        .inner_margin(10)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(
                RichText::new(format!("This board sends your bot token to {url} — allow?"))
                    .strong(),
            );
            ui.weak(
                "Its gateway URL is not Discord's. Allow it only if you set it up yourself (a \
                 simulator or a proxy you run): whoever answers there can use your bot.",
            );
            ui.horizontal(|ui| {
                if ui.button("Allow").clicked() {
                    answer = Some(true);
                }
                if ui.button("Use Discord").clicked() {
                    answer = Some(false);
                }
            });
        });
    ui.add_space(6.0);
    answer
}
