//! The routing matrix: every sound against every joined guild, a tick where it plays. The
//! ticks edit each sound's targets ("All" is the empty list: every connected guild, also ones
//! joined later). The engine already mixes once per distinct set of sounds, so routing costs
//! one Opus encode per distinct mix, not per guild.

use super::core::Core;

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
                    for id in ids {
                        let Some(sound) = core.board.sound_mut(id) else {
                            continue;
                        };
                        ui.label(&sound.name);
                        let mut all = sound.targets.is_empty();
                        let label = format!("{} → all guilds", sound.name);
                        if tick(ui, &mut all, &label) && all {
                            sound.targets.clear();
                            changed = true;
                        }
                        for (guild, name) in &guilds {
                            let mut on = sound.targets.is_empty() || sound.targets.contains(guild);
                            if tick(ui, &mut on, &format!("{} → {name}", sound.name)) {
                                if sound.targets.is_empty() {
                                    // Leaving "All": every joined guild but this one.
                                    sound.targets = guilds.iter().map(|g| g.0).collect();
                                }
                                sound.targets.retain(|g| g != guild);
                                if on {
                                    sound.targets.push(*guild);
                                }
                                changed = true;
                            }
                        }
                        ui.end_row();
                    }
                });
        });
        if changed {
            core.save();
        }
        ui.add_space(8.0);
        ui.weak("The microphone goes to every joined guild while push-to-talk is held.");
    }
}

/// A checkbox without text, named `label` for screen readers (and the UI tests).
fn tick(ui: &mut egui::Ui, on: &mut bool, label: &str) -> bool {
    let response = ui.checkbox(on, "");
    response.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, *on, label));
    response.changed()
}
