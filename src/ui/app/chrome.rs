//! The app's chrome around the panels: the top bar (title, view tabs, connection summary), the
//! transport row (stop, push-to-talk, monitor) and the notices line.

use super::*;

impl VoxApp {
    pub(super) fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(
                RichText::new("🔊 Voxboard")
                    .strong()
                    .size(18.0)
                    .color(style::ACCENT),
            );
            if self.demo.is_some() {
                style::pill(ui, "DEMO · simulator", style::WARN);
            }
            ui.add_space(16.0);
            for (v, label) in [
                (View::Board, "Board"),
                (View::Routing, "Routing"),
                (View::Settings, "Settings"),
                (View::Log, "Log"),
            ] {
                if ui.selectable_label(self.view == v, label).clicked() {
                    self.view = v;
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let s = &self.core.status;
                let (text, colour) = if !self.core.engine_running() {
                    ("offline", style::MUTED)
                } else if s.gateway_error.is_some() {
                    ("gateway error", style::BAD)
                } else if s.gateway_ready {
                    ("online", style::GOOD)
                } else {
                    ("connecting", style::WARN)
                };
                style::pill(ui, text, colour);
                let problems = self.hotkeys.problem_count();
                if problems > 0 {
                    ui.colored_label(style::WARN, format!("⚠ {problems} hotkey conflicts"))
                        .on_hover_text("Open a sound's edit dialog or Settings to see which");
                }
            });
        });
    }

    pub(super) fn transport(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let stop = egui::Button::new(
                RichText::new("⏹ Stop all")
                    .color(egui::Color32::WHITE)
                    .strong(),
            )
            .fill(style::BAD);
            if ui.add(stop).clicked() {
                self.core.stop_all();
            }
            ui.separator();
            let label = ui.label("Master");
            let s = &mut self.core.board.settings;
            let r = ui
                .add(egui::Slider::new(&mut s.master_volume, 0.0..=2.0).show_value(false))
                .labelled_by(label.id);
            ui.label(format!("{:.0}%", s.master_volume * 100.0));
            if r.changed() {
                self.core.apply_mix_settings();
            }
            if r.drag_stopped() || r.lost_focus() {
                self.core.save();
            }
            ui.separator();
            let talking = self.ptt_button || self.ptt_key;
            let label = if talking {
                "🎤 Talking…"
            } else {
                "🎤 Hold to talk"
            };
            // A fixed width: if the label change resized the button, a held pointer could fall
            // off its edge and push-to-talk would flap.
            let mut button =
                egui::Button::new(RichText::new(label).strong()).min_size(egui::vec2(130.0, 0.0));
            if talking {
                button = button.fill(style::GOOD);
            }
            let r = ui.add(button);
            crate::ui::probe::mark("Hold to talk", r.rect);
            // Held from a press that started on the button until the button is released,
            // however long: egui stops calling a press longer than its click time a click.
            let primary_down = ui.input(|i| i.pointer.primary_down());
            self.ptt_button = primary_down && (self.ptt_button || r.is_pointer_button_down_on());
            let s = &self.core.status;
            if s.mic_present {
                style::meter(ui, s.mic_level, 90.0).on_hover_text("Microphone level");
            } else {
                ui.colored_label(style::BAD, "no microphone");
            }
            ui.separator();
            let s = &mut self.core.board.settings;
            let check = ui.checkbox(&mut s.monitor, "Monitor");
            let mut changed = check.changed();
            let r = ui
                .add_enabled(
                    s.monitor,
                    egui::Slider::new(&mut s.monitor_volume, 0.0..=1.0).show_value(false),
                )
                .labelled_by(check.id);
            changed |= r.changed();
            if changed {
                self.core.apply_mix_settings();
                self.core.save();
            }
            if let Some((t, _)) = &self.core.toast {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.colored_label(style::WARN, t);
                });
            }
        });
        self.core.push_to_talk(self.ptt_wanted());
    }

    pub(super) fn notices(&mut self, ui: &mut egui::Ui) {
        if let Some(e) = self.core.save_error() {
            let n = Notice {
                text: e,
                error: true,
            };
            if !self.core.notices.contains(&n) {
                self.core.notices.push(n);
            }
        }
        let mut dismiss = None;
        for (i, n) in self.core.notices.iter().enumerate() {
            let colour = if n.error { style::BAD } else { style::ACCENT };
            egui::Frame::new()
                .fill(colour.gamma_multiply(0.18))
                .stroke(egui::Stroke::new(1.0, colour))
                .corner_radius(8)
                .inner_margin(10)
                .show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.horizontal(|ui| {
                        ui.label(RichText::new("⚠").color(colour).size(16.0));
                        ui.add(egui::Label::new(&n.text).wrap());
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            if ui.small_button("Dismiss").clicked() {
                                dismiss = Some(i);
                            }
                        });
                    });
                });
            ui.add_space(6.0);
        }
        if let Some(i) = dismiss {
            self.core.notices.remove(i);
        }
    }
}
