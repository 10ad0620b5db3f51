//! Settings: the bot token (masked, kept in the keyring or in memory, never on disk), the
//! gateway, audio devices, keys, the control API's key (masked), theme and loudness target.

use egui::RichText;

use super::core::Core;
use super::style;
use super::token::{Source, TokenState};
use crate::board::Theme;
use crate::board::hotkeys::{self, Availability};

#[derive(Default)]
pub struct SettingsPanel {
    token_input: String,
    gateway_input: Option<String>,
    /// The API key is shown in full until the panel is left or Hide is clicked.
    show_key: bool,
    /// "New key" was clicked once: the next click (on "Replace the key") renews it.
    confirm_renew: bool,
}

/// What the settings panel asks the app to do.
pub enum SettingsAction {
    /// The gateway changed: restart the engine.
    Reconnect,
    /// Keys changed: register the hotkeys again.
    Rebind,
    /// Replace the control API's key with a new random one.
    RenewApiKey,
}

impl SettingsPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        core: &mut Core,
        token: &mut TokenState,
        hotkeys: &Availability,
        problem: &dyn Fn(&str) -> Option<String>,
        api_url: Option<&str>,
    ) -> Option<SettingsAction> {
        let mut action = None;
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show(ui, |ui| {
                ui.heading("Settings");
                ui.add_space(6.0);
                section(ui, "Discord bot", |ui| self.token_ui(ui, token));
                section(ui, "Gateway", |ui| {
                    if self.gateway_ui(ui, core) {
                        action = Some(SettingsAction::Reconnect);
                    }
                });
                section(ui, "Audio", |ui| audio_ui(ui, core));
                section(ui, "Voice channels", |ui| {
                    let deaf = &mut core.board.settings.deafen_bot;
                    if ui
                        .checkbox(deaf, "Join deafened (the bot hears nobody)")
                        .on_hover_text(
                            "A soundboard only speaks. Undeafened, Discord sends the bot \
                             everyone's audio. Applies from the next join.",
                        )
                        .changed()
                    {
                        core.save();
                    }
                });
                section(ui, "Keys", |ui| {
                    if keys_ui(ui, core, hotkeys, problem) {
                        action = Some(SettingsAction::Rebind);
                    }
                });
                section(ui, "Control API", |ui| {
                    if self.api_ui(ui, core, api_url) {
                        action = Some(SettingsAction::RenewApiKey);
                    }
                });
                section(ui, "Appearance", |ui| {
                    ui.horizontal(|ui| {
                        let t = &mut core.board.settings.theme;
                        let before = *t;
                        ui.selectable_value(t, Theme::Dark, "🌙 Dark");
                        ui.selectable_value(t, Theme::Light, "☀ Light");
                        if *t != before {
                            style::apply(ui.ctx(), *t);
                            core.save();
                        }
                    });
                });
            });
        action
    }

    fn token_ui(&mut self, ui: &mut egui::Ui, token: &mut TokenState) {
        let status = match token.source() {
            Some(Source::Keyring) => ("Token loaded from the system keyring.", style::GOOD),
            Some(Source::Env) => ("Token taken from DISCORD_TOKEN.", style::GOOD),
            Some(Source::Memory) => ("Token kept in memory for this run.", style::WARN),
            Some(Source::Demo) => ("Demo mode: the simulator's test token.", style::GOOD),
            None if token.busy() || !token.looked_up => ("Looking in the keyring…", style::MUTED),
            None => ("No token yet.", style::WARN),
        };
        ui.colored_label(status.1, status.0);
        if let Some(note) = &token.note {
            ui.weak(note);
        }
        ui.horizontal(|ui| {
            ui.label("Bot token");
            let r = ui.add(
                egui::TextEdit::singleline(&mut self.token_input)
                    .password(true)
                    .hint_text("paste the bot token")
                    .desired_width(260.0),
            );
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let can = !self.token_input.trim().is_empty() && !token.busy();
            if (ui
                .add_enabled(can, egui::Button::new("Save & connect"))
                .clicked()
                || enter && can)
                && token.source() != Some(Source::Demo)
            {
                token.enter(std::mem::take(&mut self.token_input));
            }
            if token.token().is_some()
                && token.source() != Some(Source::Demo)
                && ui.button("Forget").clicked()
            {
                token.forget();
            }
        });
        ui.weak("Voxboard never writes the token to its files or its log.");
    }

    fn gateway_ui(&mut self, ui: &mut egui::Ui, core: &mut Core) -> bool {
        let current = core.board.settings.gateway_url.clone().unwrap_or_default();
        let input = self.gateway_input.get_or_insert_with(|| current.clone());
        let mut apply = false;
        ui.horizontal(|ui| {
            ui.label("Gateway URL");
            ui.add(
                egui::TextEdit::singleline(input)
                    .hint_text("Discord (default)")
                    .desired_width(260.0),
            );
            if ui
                .add_enabled(*input != current, egui::Button::new("Apply"))
                .clicked()
            {
                let v = input.trim().to_owned();
                core.board.settings.gateway_url = (!v.is_empty()).then_some(v);
                core.save();
                apply = true;
            }
        });
        ui.weak("Leave empty for Discord. A local simulator uses ws://127.0.0.1:PORT.");
        apply
    }
}

impl SettingsPanel {
    /// Where the API listens, and its key: masked, shown on request, copied, renewed (after a
    /// confirmation: every tool set up with the old key stops working). Returns whether to
    /// renew.
    fn api_ui(&mut self, ui: &mut egui::Ui, core: &mut Core, api_url: Option<&str>) -> bool {
        match api_url {
            Some(url) => ui.colored_label(style::GOOD, format!("Listening on {url}")),
            None => ui.colored_label(style::WARN, "Not running (see the log for why)."),
        };
        let key = core.board.settings.api.key.expose().to_owned();
        let mut renew = false;
        ui.horizontal(|ui| {
            ui.add_sized([110.0, 20.0], egui::Label::new("API key"));
            let shown = if self.show_key {
                key.clone()
            } else {
                masked(&key)
            };
            ui.label(RichText::new(shown).monospace());
        });
        ui.horizontal(|ui| {
            let toggle = if self.show_key { "Hide" } else { "Show" };
            if ui.button(toggle).clicked() {
                self.show_key = !self.show_key;
            }
            if ui
                .button("Copy")
                .on_hover_text("Copy the key to paste into Stream Deck, Companion or OBS")
                .clicked()
            {
                ui.ctx().copy_text(key.clone());
                core.toast("API key copied");
            }
            if self.confirm_renew {
                if ui
                    .button(RichText::new("Replace the key").color(style::BAD))
                    .clicked()
                {
                    renew = true;
                    self.confirm_renew = false;
                }
                if ui.button("Keep it").clicked() {
                    self.confirm_renew = false;
                }
            } else if ui.button("New key").clicked() {
                self.confirm_renew = true;
            }
        });
        if self.confirm_renew {
            ui.colored_label(
                style::WARN,
                "Every tool set up with the current key (buttons, overlays) stops working.",
            );
        }
        ui.weak("Tools on this machine control Voxboard with this key (docs/control.md).");
        renew
    }
}

/// All but the last four characters hidden: enough to tell keys apart, not to use one.
fn masked(key: &str) -> String {
    let n = key.chars().count();
    let tail: String = key.chars().skip(n.saturating_sub(4)).collect();
    format!("{}{tail}", "•".repeat(12))
}

fn section(ui: &mut egui::Ui, title: &str, body: impl FnOnce(&mut egui::Ui)) {
    style::card(ui).show(ui, |ui| {
        ui.set_width(ui.available_width().min(640.0));
        ui.label(RichText::new(title).strong().size(15.0));
        ui.add_space(4.0);
        body(ui);
    });
    ui.add_space(8.0);
}

fn audio_ui(ui: &mut egui::Ui, core: &mut Core) {
    let devices = core.devices.snapshot();
    let mut reattach = false;
    match &devices.list {
        None => {
            ui.weak("Looking for sound devices…");
        }
        Some(list) if list.inputs.is_empty() && list.outputs.is_empty() => {
            ui.colored_label(
                style::WARN,
                "No sound devices (no sound server or hardware): sounds still play into Discord.",
            );
        }
        Some(list) => {
            let s = &mut core.board.settings;
            reattach |= device_picker(ui, "Input device", &list.inputs, &mut s.input_device);
            reattach |= device_picker(ui, "Output device", &list.outputs, &mut s.output_device);
        }
    }
    ui.horizontal(|ui| {
        ui.label("Microphone:");
        if devices.mic_ok {
            ui.weak(&devices.mic);
        } else {
            ui.colored_label(style::WARN, &devices.mic);
        }
    });
    ui.horizontal(|ui| {
        ui.label("Monitor:");
        ui.weak(&devices.monitor);
        if ui.small_button("Rescan").clicked() {
            core.devices.relist();
        }
    });
    if reattach {
        core.attach_devices();
        core.save();
    }
    let s = &mut core.board.settings;
    let mut changed = false;
    changed |= ui
        .add(egui::Slider::new(&mut s.mic_gain, 0.0..=2.0).text("Microphone gain"))
        .changed();
    changed |= ui
        .add(
            egui::Slider::new(&mut s.loudness_target_lufs, -30.0..=-8.0)
                .text("Loudness target (LUFS)")
                .fixed_decimals(0),
        )
        .changed();
    if changed {
        core.apply_mix_settings();
        core.save();
    }
}

/// A device combo box; `None` is the system default. Returns whether the choice changed.
fn device_picker(
    ui: &mut egui::Ui,
    label: &str,
    devices: &[voxboard_audio::devices::DeviceInfo],
    chosen: &mut Option<String>,
) -> bool {
    let before = chosen.clone();
    let shown = chosen
        .as_deref()
        .and_then(|id| devices.iter().find(|d| d.id == id))
        .map_or("System default".to_owned(), |d| d.name.clone());
    ui.horizontal(|ui| {
        ui.add_sized([110.0, 20.0], egui::Label::new(label));
        egui::ComboBox::from_id_salt(label)
            .selected_text(shown)
            .width(320.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(chosen, None, "System default");
                for d in devices.iter().filter(|d| d.default_config.is_some()) {
                    ui.selectable_value(chosen, Some(d.id.clone()), &d.name);
                }
            })
            .response
            .on_hover_text(label);
    });
    *chosen != before
}

fn keys_ui(
    ui: &mut egui::Ui,
    core: &mut Core,
    availability: &Availability,
    problem: &dyn Fn(&str) -> Option<String>,
) -> bool {
    match availability {
        Availability::Global => {
            ui.colored_label(style::GOOD, "Hotkeys work system-wide.");
        }
        Availability::WindowOnly(why) => {
            ui.colored_label(style::WARN, why);
        }
    }
    let mut changed = false;
    let s = &mut core.board.settings;
    for (label, value) in [
        ("Push to talk", &mut s.push_to_talk_key),
        ("Stop all", &mut s.stop_all_key),
    ] {
        ui.horizontal(|ui| {
            ui.add_sized([110.0, 20.0], egui::Label::new(label));
            let r = ui.add(
                egui::TextEdit::singleline(value)
                    .hint_text("e.g. Ctrl+Space")
                    .desired_width(160.0),
            );
            changed |= r.lost_focus();
            let v = value.trim();
            if !v.is_empty() {
                if let Err(e) = hotkeys::parse(v) {
                    ui.colored_label(style::BAD, e);
                } else if let Some(p) = problem(value) {
                    ui.colored_label(style::WARN, p);
                }
            }
        });
    }
    if changed {
        core.save();
    }
    changed
}
