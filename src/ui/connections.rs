//! One card per guild: pick a voice channel, connect or disconnect, and watch the connection
//! live — phase, endpoint, ping, encryption, E2EE (DAVE) state with the privacy code, traffic,
//! the speaking light, recoveries, and the last close code with its reason in plain words.

use std::collections::{BTreeSet, HashMap};

use egui::RichText;

use super::core::Core;
use super::style;
use voxboard_voice::discord::close_codes::voice_close_reason;
use voxboard_voice::engine::Phase;
use voxboard_voice::engine::status::{ConnStatus, GuildInfo};

#[derive(Default)]
pub struct ConnectionsPanel {
    /// Channel picked in each guild's picker.
    picked: HashMap<u64, u64>,
}

impl ConnectionsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, core: &mut Core) {
        ui.horizontal(|ui| {
            ui.heading("Connections");
        });
        gateway_line(ui, core);
        ui.add_space(6.0);
        let mut ids: BTreeSet<u64> = core.status.guilds.iter().map(|g| g.id).collect();
        ids.extend(core.status.connections.iter().map(|c| c.guild_id));
        ids.extend(core.board.settings.connections.keys().copied());
        if ids.is_empty() {
            ui.weak("Guilds the bot is in appear here once Discord has answered.");
            return;
        }
        egui::ScrollArea::vertical()
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for id in ids {
                    let guild = core.status.guilds.iter().find(|g| g.id == id).cloned();
                    let conn = core
                        .status
                        .connections
                        .iter()
                        .find(|c| c.guild_id == id)
                        .cloned();
                    self.card(ui, core, id, guild.as_ref(), conn.as_ref());
                    ui.add_space(8.0);
                }
            });
    }

    fn card(
        &mut self,
        ui: &mut egui::Ui,
        core: &mut Core,
        id: u64,
        guild: Option<&GuildInfo>,
        conn: Option<&ConnStatus>,
    ) {
        style::card(ui).show(ui, |ui| {
            ui.set_width(ui.available_width());
            let live = conn.is_some_and(|c| !c.phase.is_over());
            ui.horizontal(|ui| {
                let name = guild.map_or_else(|| format!("Guild {id}"), |g| g.name.clone());
                ui.label(RichText::new(name).strong().size(15.0));
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let speaking = conn.is_some_and(|c| c.speaking);
                    style::light(
                        ui,
                        speaking,
                        style::GOOD,
                        if speaking { "speaking" } else { "silent" },
                    );
                    let (phase, colour) = conn.map_or(("not connected", style::WARN), |c| {
                        (c.phase.name(), style::phase_colour(c.phase))
                    });
                    style::pill(ui, phase, colour);
                });
            });
            self.picker(ui, core, id, guild, conn, live);
            if let Some(e) = core.join_errors.get(&id) {
                ui.colored_label(style::BAD, format!("Join refused: {e}"));
            }
            if let Some(c) = conn {
                details(ui, c);
            }
        });
    }

    fn picker(
        &mut self,
        ui: &mut egui::Ui,
        core: &mut Core,
        id: u64,
        guild: Option<&GuildInfo>,
        conn: Option<&ConnStatus>,
        live: bool,
    ) {
        let channels: Vec<(u64, String, bool)> =
            guild.map(|g| g.voice_channels.clone()).unwrap_or_default();
        let default = conn
            .map(|c| c.channel_id)
            .or_else(|| core.board.settings.connections.get(&id).copied())
            .or_else(|| channels.first().map(|c| c.0));
        let picked = self.picked.entry(id).or_insert(default.unwrap_or(0));
        if *picked == 0
            && let Some(d) = default
        {
            *picked = d;
        }
        let name_of = |cid: u64| {
            channels
                .iter()
                .find(|c| c.0 == cid)
                .map(|c| format!("{}{}", if c.2 { "🎭 " } else { "🔊 " }, c.1))
                .unwrap_or_else(|| {
                    if cid == 0 {
                        "Pick a channel".into()
                    } else {
                        format!("#{cid}")
                    }
                })
        };
        ui.horizontal(|ui| {
            let label = ui.weak("Channel");
            egui::ComboBox::from_id_salt(("channel", id))
                .selected_text(name_of(*picked))
                .width(160.0)
                .show_ui(ui, |ui| {
                    for (cid, _, _) in &channels {
                        ui.selectable_value(picked, *cid, name_of(*cid));
                    }
                })
                .response
                .labelled_by(label.id);
            let picked = *picked;
            if live {
                if ui.button("Disconnect").clicked() {
                    core.leave(id);
                    core.board.settings.connections.remove(&id);
                    core.save();
                }
            } else {
                let r = ui.add_enabled(
                    picked != 0 && core.engine_running(),
                    egui::Button::new(RichText::new("Connect").color(egui::Color32::WHITE))
                        .fill(style::ACCENT),
                );
                if r.clicked() {
                    core.join(id, picked);
                    core.board.settings.connections.insert(id, picked);
                    core.save();
                }
            }
        });
    }
}

fn gateway_line(ui: &mut egui::Ui, core: &Core) {
    let s = &core.status;
    if let Some(e) = &s.engine_error {
        ui.colored_label(style::WARN, e).on_hover_text(format!(
            "Voxboard recovered by itself ({} time(s)) and joined your channels again. \
             Please report this: it is a bug.",
            s.engine_restarts
        ));
    }
    if !core.engine_running() {
        ui.colored_label(style::WARN, "Not connected: add the bot token in Settings.");
    } else if let Some(e) = &s.gateway_error {
        ui.colored_label(style::BAD, format!("Discord refused the bot: {e}"));
    } else if s.gateway_ready {
        let mut text = format!("Gateway ready · {} guilds", s.guilds.len());
        if s.gateway_reconnects > 0 {
            text.push_str(&format!(" · {} reconnects", s.gateway_reconnects));
        }
        ui.colored_label(style::GOOD, text);
    } else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Connecting to Discord…");
        });
        if let Some(why) = &s.gateway_trouble {
            ui.colored_label(style::WARN, format!("Retrying: {why}"))
                .on_hover_text("The gateway connection failed; Voxboard keeps retrying.");
        }
    }
}

fn details(ui: &mut egui::Ui, c: &ConnStatus) {
    if let Some(reason) = &c.reason {
        ui.colored_label(
            if c.phase == Phase::Failed {
                style::BAD
            } else {
                style::WARN
            },
            capitalise(reason),
        );
    }
    if let Some(stage) = &c.stage {
        ui.colored_label(style::WARN, capitalise(stage))
            .on_hover_text("Discord forwards no audio from a stage's audience; nothing is sent.");
    }
    egui::Grid::new(("conn-details", c.guild_id))
        .num_columns(2)
        .spacing(egui::vec2(10.0, 3.0))
        .show(ui, |ui| {
            let mut row = |k: &str, v: String| {
                ui.weak(k);
                ui.label(v);
                ui.end_row();
            };
            row("Endpoint", c.endpoint.clone().unwrap_or_else(|| "—".into()));
            row(
                "Ping",
                c.heartbeat_rtt.map_or_else(
                    || "waiting for the first heartbeat".into(),
                    |d| match d.as_secs_f64() * 1000.0 {
                        ms if ms < 10.0 => format!("{ms:.1} ms"),
                        ms => format!("{ms:.0} ms"),
                    },
                ),
            );
            row("Encryption", c.mode.unwrap_or("—").to_owned());
            let d = &c.dave;
            let e2ee = if d.protocol_version == 0 {
                "off".to_owned()
            } else {
                let mut s = format!("DAVE v{}", d.protocol_version);
                if let Some(e) = d.epoch {
                    s.push_str(&format!(" · epoch {e}"));
                }
                s.push_str(if d.can_encrypt {
                    " · encrypting"
                } else {
                    " · waiting for keys"
                });
                s
            };
            row("E2EE", e2ee);
            if let Some(code) = &d.privacy_code {
                row("Privacy code", code.clone());
            }
            row(
                "Sent",
                format!("{} packets · {}", c.packets, style::bytes(c.bytes)),
            );
            if let Some(latency) = c.last_play_latency {
                row(
                    "Click to packet",
                    format!("{:.1} ms (last sound)", latency.as_secs_f64() * 1000.0),
                );
            }
            row(
                "Recovered",
                format!(
                    "{} resumes · {} rejoins · {} moves",
                    c.resumes, c.rejoins, c.moves
                ),
            );
            if let Some(code) = c.last_close {
                row(
                    "Last close",
                    format!("{code}: {}", voice_close_reason(code)),
                );
            }
            if let Some(problem) = &c.last_error {
                row("Last problem", problem.clone());
            }
        });
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
