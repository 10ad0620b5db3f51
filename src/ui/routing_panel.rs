//! The routing matrix: the microphone and every sound against every joined guild, a tick where
//! each plays. The ticks edit the board's target lists ("All" is the empty list: every
//! connected guild, also ones joined later). The engine mixes once per distinct set of what a
//! guild hears, so routing costs one Opus encode per distinct mix, not per guild.

use super::core::Core;

/// The microphone row's name (and the start of its ticks' labels).
pub const MIC_ROW: &str = "🎤 Microphone";

#[derive(Default)]
pub struct RoutingPanel;

impl RoutingPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, core: &mut Core) {
        ui.heading("Routing");
        ui.weak("Where each sound plays. \"All\" follows you into guilds you join later.");
        ui.add_space(8.0);
        // Joined guilds, in the order of the connections panel.
        let guilds: Vec<(u64, String)> = core
            .status
            .connections
            .iter()
            .map(|c| {
                let name = core.status.guilds.iter().find(|g| g.id == c.guild_id);
                let name = name.map_or_else(|| format!("Guild {}", c.guild_id), |g| g.name.clone());
                (c.guild_id, name)
            })
            .collect();
        if guilds.is_empty() {
            ui.weak("Join a voice channel (Connections, on the right) to route sounds.");
            return;
        }
        let ids: Vec<u64> = core.board.sounds().map(|s| s.id).collect();
        let mut changed = false;
        let mut mic = core.board.settings.mic_targets.clone();
        let mut mic_changed = false;
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("routing")
                .striped(true)
                .spacing(egui::vec2(18.0, 6.0))
                .show(ui, |ui| {
                    ui.strong("Sound");
                    ui.strong("All");
                    for (_, name) in &guilds {
                        ui.strong(name);
                    }
                    ui.end_row();
                    mic_changed = row(ui, MIC_ROW, &mut mic, &guilds);
                    for id in ids {
                        let Some(sound) = core.board.sound_mut(id) else {
                            continue;
                        };
                        let name = sound.name.clone();
                        changed |= row(ui, &name, &mut sound.targets, &guilds);
                    }
                });
        });
        if mic_changed {
            // Saves too.
            core.set_mic_targets(mic);
        } else if changed {
            core.save();
        }
        ui.add_space(8.0);
        ui.weak("The microphone goes to its ticked guilds while push-to-talk is held.");
    }
}

/// One row of ticks editing `targets` (empty = all guilds); returns whether it changed.
fn row(ui: &mut egui::Ui, name: &str, targets: &mut Vec<u64>, guilds: &[(u64, String)]) -> bool {
    let mut changed = false;
    ui.label(name);
    let mut all = targets.is_empty();
    if tick(ui, &mut all, &format!("{name} → all guilds")) && all {
        targets.clear();
        changed = true;
    }
    for (guild, guild_name) in guilds {
        let mut on = targets.is_empty() || targets.contains(guild);
        // An empty list means every guild: unticking the only guild left must not turn into
        // that (the microphone would go everywhere). Tick another one first.
        let only = targets.len() == 1 && targets[0] == *guild;
        let label = format!("{name} → {guild_name}");
        if ui
            .add_enabled_ui(!only, |ui| tick(ui, &mut on, &label))
            .inner
        {
            if targets.is_empty() {
                // Leaving "All": every joined guild but this one.
                *targets = guilds.iter().map(|g| g.0).collect();
            }
            targets.retain(|g| g != guild);
            if on {
                targets.push(*guild);
            }
            changed = true;
        }
    }
    ui.end_row();
    changed
}

/// A checkbox without text, named `label` for screen readers (and the UI tests).
fn tick(ui: &mut egui::Ui, on: &mut bool, label: &str) -> bool {
    let response = ui.checkbox(on, "");
    let enabled = ui.is_enabled();
    response.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, enabled, *on, label));
    response
        .on_disabled_hover_text("The only guild it goes to: tick another one first.")
        .changed()
}
