//! The edit dialog of one sound: name, gain, hotkey, retrigger policy, choke group, entrance,
//! loop, normalise, colour, target guilds, trim and fades. Edits a copy; "Save" writes it to
//! the board and persists it.

use egui::{Color32, CornerRadius, Sense, Stroke, vec2};

use super::core::Core;
use super::{style, trim_editor};
use crate::board::hotkeys;
use crate::board::{Entrance, PALETTE, Sound};
use voxboard_voice::engine::Retrigger;

/// The dialog's heading, button row and the modal's margins, in points: what the scrolling
/// body must leave of the window's height.
const BUTTONS_AND_MARGINS: f32 = 150.0;
/// Never squeeze the body below this, however small the window.
const MIN_BODY: f32 = 120.0;

pub struct EditDialog {
    draft: Sound,
    path_text: String,
    /// The entrance member's user id as typed.
    member_text: String,
    /// The preview playing on the monitor, if any (stopped when the dialog closes).
    preview: Option<u64>,
}

pub enum Outcome {
    Open,
    Closed,
}

impl EditDialog {
    pub fn new(sound: &Sound) -> Self {
        Self {
            draft: sound.clone(),
            path_text: sound.path.display().to_string(),
            member_text: match sound.entrance {
                Some(Entrance::Member(id)) => id.to_string(),
                _ => String::new(),
            },
            preview: None,
        }
    }

    pub fn sound_id(&self) -> u64 {
        self.draft.id
    }

    pub fn ui(&mut self, ctx: &egui::Context, core: &mut Core, problem: Option<String>) -> Outcome {
        let mut outcome = Outcome::Open;
        let modal = egui::Modal::new(egui::Id::unique("edit-sound")).show(ctx, |ui| {
            ui.set_width(446.0);
            ui.heading("Edit sound");
            ui.add_space(6.0);
            // The body scrolls when the window is shorter than the dialog (the waveform makes
            // it tall), so that Save and Cancel below always stay on screen.
            let body = (ctx.content_rect().height() - BUTTONS_AND_MARGINS).max(MIN_BODY);
            egui::ScrollArea::vertical()
                .max_height(body)
                .show(ui, |ui| {
                    // Room at the sides: the scroll area clips, and the waveform's marker
                    // handles stand out past its ends (the right one clear of the scroll bar).
                    let room = egui::Margin {
                        left: 8,
                        right: 18,
                        top: 0,
                        bottom: 0,
                    };
                    egui::Frame::NONE.inner_margin(room).show(ui, |ui| {
                        egui::Grid::new("edit-grid")
                            .num_columns(2)
                            .spacing(vec2(12.0, 10.0))
                            .show(ui, |ui| self.fields(ui, core, problem));
                        ui.add_space(10.0);
                        ui.label(egui::RichText::new("Trim and fades").strong());
                        trim_editor::section(ui, &mut self.draft, core, &mut self.preview);
                    });
                });
            ui.add_space(10.0);
            ui.separator();
            ui.horizontal(|ui| {
                if ui
                    .add(egui::Button::new("Save").fill(style::ACCENT))
                    .clicked()
                {
                    self.draft.path = self.path_text.trim().into();
                    if self.draft.name.trim().is_empty() {
                        self.draft.name = "Untitled".into();
                    }
                    let id = self.draft.id;
                    if let Some(s) = core.board.sound_mut(id) {
                        *s = self.draft.clone();
                    }
                    core.sound_edited(id);
                    outcome = Outcome::Closed;
                }
                if ui.button("Cancel").clicked() {
                    outcome = Outcome::Closed;
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .add(egui::Button::new(
                            egui::RichText::new("Remove").color(style::BAD),
                        ))
                        .clicked()
                    {
                        core.remove_sound(self.draft.id);
                        outcome = Outcome::Closed;
                    }
                });
            });
        });
        if modal.should_close() {
            outcome = Outcome::Closed;
        }
        if matches!(outcome, Outcome::Closed)
            && let Some(id) = self.preview.take()
        {
            core.stop_playback(id);
        }
        outcome
    }

    fn fields(&mut self, ui: &mut egui::Ui, core: &Core, problem: Option<String>) {
        let d = &mut self.draft;
        ui.label("Name");
        ui.add(egui::TextEdit::singleline(&mut d.name).desired_width(280.0));
        ui.end_row();

        ui.label("File");
        ui.add(egui::TextEdit::singleline(&mut self.path_text).desired_width(280.0));
        ui.end_row();

        ui.label("Gain");
        let db = 20.0 * d.gain.max(1e-4).log10();
        ui.add(
            egui::Slider::new(&mut d.gain, 0.0..=2.0)
                .text(format!("{db:+.1} dB"))
                .fixed_decimals(2),
        );
        ui.end_row();

        ui.label("Hotkey");
        ui.vertical(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut d.hotkey)
                    .hint_text("e.g. Ctrl+Shift+1 or F5")
                    .desired_width(180.0),
            );
            let typed = d.hotkey.trim();
            if !typed.is_empty() {
                if let Err(e) = hotkeys::parse(typed) {
                    ui.colored_label(style::BAD, e);
                } else if let Some(p) = &problem {
                    ui.colored_label(style::WARN, p);
                }
            }
        });
        ui.end_row();

        let label = ui.label("When retriggered");
        egui::ComboBox::from_id_salt("retrigger")
            .selected_text(retrigger_name(d.retrigger))
            .show_ui(ui, |ui| {
                for r in [
                    Retrigger::Overlap,
                    Retrigger::Restart,
                    Retrigger::Stop,
                    Retrigger::Ignore,
                ] {
                    ui.selectable_value(&mut d.retrigger, r, retrigger_name(r));
                }
            })
            .response
            .labelled_by(label.id);
        ui.end_row();

        let label = ui.label("Choke group");
        egui::ComboBox::from_id_salt("choke")
            .selected_text(choke_name(d.choke_group))
            .show_ui(ui, |ui| {
                for g in std::iter::once(None).chain((1..=CHOKE_GROUPS).map(Some)) {
                    ui.selectable_value(&mut d.choke_group, g, choke_name(g));
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text("Sounds of one group stop each other: the newest plays.");
        ui.end_row();

        let label = ui.label("Entrance");
        ui.horizontal(|ui| {
            let current = match d.entrance {
                None => "Off",
                Some(Entrance::Anyone) => "When anyone joins",
                Some(Entrance::Member(_)) => "When this member joins:",
            };
            egui::ComboBox::from_id_salt("entrance")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut d.entrance, None, "Off");
                    ui.selectable_value(
                        &mut d.entrance,
                        Some(Entrance::Anyone),
                        "When anyone joins",
                    );
                    let member = Entrance::Member(self.member_text.trim().parse().unwrap_or(0));
                    ui.selectable_value(&mut d.entrance, Some(member), "When this member joins:");
                })
                .response
                .labelled_by(label.id)
                .on_hover_text(
                    "Plays into a guild when someone enters the bot's voice channel there \
                     (once per member per cooldown).",
                );
            if let Some(Entrance::Member(id)) = &mut d.entrance {
                let field = ui.add(
                    egui::TextEdit::singleline(&mut self.member_text)
                        .hint_text("Discord user id")
                        .desired_width(150.0),
                );
                if field.changed() {
                    *id = self.member_text.trim().parse().unwrap_or(0);
                }
            }
        });
        ui.end_row();

        ui.label("Playback");
        ui.horizontal(|ui| {
            ui.checkbox(&mut d.looped, "Loop");
            ui.checkbox(&mut d.normalise, "Normalise loudness");
        });
        ui.end_row();

        ui.label("Colour");
        ui.horizontal(|ui| {
            for c in PALETTE {
                swatch(ui, &mut d.colour, c);
            }
            ui.color_edit_button_srgb(&mut d.colour);
        });
        ui.end_row();

        ui.label("Play into");
        ui.vertical(|ui| {
            let guilds = &core.status.guilds;
            if guilds.is_empty() {
                ui.weak("Every connected guild (guilds appear once connected).");
            }
            let mut all = d.targets.is_empty();
            if ui.checkbox(&mut all, "Every connected guild").changed() && all {
                d.targets.clear();
            }
            for g in guilds {
                let mut on = d.targets.contains(&g.id);
                if ui.checkbox(&mut on, &g.name).changed() {
                    if on {
                        d.targets.push(g.id);
                    } else {
                        d.targets.retain(|t| *t != g.id);
                    }
                }
            }
        });
        ui.end_row();
    }
}

fn swatch(ui: &mut egui::Ui, current: &mut [u8; 3], colour: [u8; 3]) {
    let (rect, r) = ui.allocate_exact_size(vec2(20.0, 20.0), Sense::click());
    let selected = *current == colour;
    ui.painter()
        .rect_filled(rect, CornerRadius::same(5), style::rgb(colour));
    if selected || r.hovered() {
        ui.painter().rect_stroke(
            rect.expand(2.0),
            CornerRadius::same(6),
            Stroke::new(2.0, Color32::WHITE),
            egui::StrokeKind::Outside,
        );
    }
    if r.clicked() {
        *current = colour;
    }
}

/// Groups offered in the dialog (a board is free to hold any number).
const CHOKE_GROUPS: u32 = 8;

fn choke_name(group: Option<u32>) -> String {
    match group {
        None => "None".into(),
        Some(g) => format!("Group {g}"),
    }
}

pub fn retrigger_name(r: Retrigger) -> &'static str {
    match r {
        Retrigger::Overlap => "Play again on top",
        Retrigger::Restart => "Restart from the beginning",
        Retrigger::Stop => "Stop it (toggle)",
        Retrigger::Ignore => "Ignore while playing",
    }
}
