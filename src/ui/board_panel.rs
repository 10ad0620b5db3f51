//! The board: tabs, a search box, and the grid of sound buttons. A button shows the sound's
//! name, duration (once decoded), hotkey and colour; a progress bar while it plays; a badge
//! with the reason when its file is missing or cannot be decoded. Click plays, right-click
//! edits, drag reorders. Only the rows on screen are laid out, so 500 sounds cost nothing.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use egui::{Align2, Color32, CornerRadius, FontId, Sense, Stroke, vec2};

use super::core::Core;
use super::style;
use voxboard_audio::library::SoundState;

/// The smallest tile; tiles grow to fill the row.
const TILE: egui::Vec2 = vec2(160.0, 86.0);
const GAP: f32 = 10.0;

/// What the panel asks the app to do after drawing.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardAction {
    Edit(u64),
}

/// Payload of a tile being dragged: its index in the tab.
struct Dragged(usize);

#[derive(Default)]
pub struct BoardPanel {
    pub tab: usize,
    pub search: String,
    path_input: String,
    dialog: Option<Receiver<Option<Vec<PathBuf>>>>,
    renaming_tab: Option<(usize, String)>,
    /// Sound ids drawn in the last frame (for preloading).
    pub visible: Vec<u64>,
}

impl BoardPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, core: &mut Core) -> Option<BoardAction> {
        self.poll_dialog(core);
        self.tabs_bar(ui, core);
        ui.add_space(4.0);
        self.toolbar(ui, core);
        ui.add_space(6.0);
        self.grid(ui, core)
    }

    fn tabs_bar(&mut self, ui: &mut egui::Ui, core: &mut Core) {
        self.tab = self.tab.min(core.board.tabs.len().saturating_sub(1));
        ui.horizontal_wrapped(|ui| {
            let mut rename = None;
            let mut delete = None;
            for (i, tab) in core.board.tabs.iter().enumerate() {
                if let Some((at, text)) = &mut self.renaming_tab
                    && *at == i
                {
                    let r = ui.add(egui::TextEdit::singleline(text).desired_width(110.0));
                    if r.lost_focus() {
                        rename = Some((i, text.clone()));
                    } else {
                        r.request_focus();
                    }
                    continue;
                }
                let label = format!("{}  {}", tab.name, tab.sounds.len());
                let r = ui.selectable_label(self.tab == i, label);
                if r.clicked() {
                    self.tab = i;
                }
                if r.double_clicked() {
                    self.renaming_tab = Some((i, tab.name.clone()));
                }
                let r = r.on_hover_text("Double-click to rename · right-click for more");
                r.context_menu(|ui| {
                    if ui.button("Rename").clicked() {
                        self.renaming_tab = Some((i, tab.name.clone()));
                        ui.close();
                    }
                    let can_delete = tab.sounds.is_empty() && core.board.tabs.len() > 1;
                    let del = ui.add_enabled(can_delete, egui::Button::new("Delete tab"));
                    if del.clicked() {
                        delete = Some(i);
                        ui.close();
                    }
                    del.on_disabled_hover_text(
                        "Only an empty tab can be deleted (and not the last one)",
                    );
                });
            }
            if let Some(i) = delete {
                core.board.tabs.remove(i);
                self.tab = self.tab.min(core.board.tabs.len() - 1);
                core.save();
            }
            if let Some((i, name)) = rename {
                self.renaming_tab = None;
                if !name.trim().is_empty() {
                    core.board.tabs[i].name = name.trim().to_owned();
                    core.save();
                }
            }
            if ui.button("+ Tab").on_hover_text("Add a tab").clicked() {
                let n = core.board.tabs.len() + 1;
                core.board
                    .tabs
                    .push(crate::board::Tab::new(&format!("Tab {n}")));
                self.tab = core.board.tabs.len() - 1;
                core.save();
            }
        });
    }

    fn toolbar(&mut self, ui: &mut egui::Ui, core: &mut Core) {
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.search)
                    .hint_text("🔍 Search sounds")
                    .desired_width(220.0),
            );
            if !self.search.is_empty() && ui.small_button("×").on_hover_text("Clear").clicked() {
                self.search.clear();
            }
            ui.separator();
            let can_dialog = file_dialog_available();
            let r = ui.add_enabled(
                can_dialog && self.dialog.is_none(),
                egui::Button::new("➕ Add sounds…"),
            );
            if r.clicked() {
                self.open_dialog();
            }
            if !can_dialog {
                r.on_disabled_hover_text(
                    "No file dialog here (no desktop portal). Type a path, or drop files on the window.",
                );
            }
            let add_path = ui.add(
                egui::TextEdit::singleline(&mut self.path_input)
                    .hint_text("…or a file path")
                    .desired_width(200.0),
            );
            let enter = add_path.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Add").clicked() || enter) && !self.path_input.trim().is_empty() {
                let path = PathBuf::from(self.path_input.trim());
                core.add_files(self.tab, vec![path]);
                self.path_input.clear();
            }
        });
    }

    fn open_dialog(&mut self) {
        let (tx, rx) = channel();
        // The dialog is modal and blocks its caller: keep it off the UI thread.
        let spawned = std::thread::Builder::new()
            .name("voxboard-file-dialog".into())
            .spawn(move || {
                let picked = rfd::FileDialog::new()
                    .set_title("Add sounds")
                    .add_filter("Audio", &["wav", "mp3", "ogg", "opus", "flac"])
                    .pick_files();
                let _ = tx.send(picked);
            });
        if spawned.is_ok() {
            self.dialog = Some(rx);
        }
    }

    fn poll_dialog(&mut self, core: &mut Core) {
        let Some(rx) = &self.dialog else { return };
        match rx.try_recv() {
            Ok(Some(paths)) => {
                self.dialog = None;
                core.add_files(self.tab, paths);
            }
            Ok(None) | Err(std::sync::mpsc::TryRecvError::Disconnected) => self.dialog = None,
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
    }

    fn grid(&mut self, ui: &mut egui::Ui, core: &mut Core) -> Option<BoardAction> {
        let needle = self.search.trim().to_lowercase();
        let tab = core.board.tabs.get(self.tab)?;
        // (index in tab, id)
        let shown: Vec<(usize, u64)> = tab
            .sounds
            .iter()
            .enumerate()
            .filter(|(_, s)| needle.is_empty() || s.name.to_lowercase().contains(&needle))
            .map(|(i, s)| (i, s.id))
            .collect();
        if shown.is_empty() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                if tab.sounds.is_empty() {
                    ui.heading("No sounds yet");
                    ui.weak("Drop audio files here, or use “Add sounds…”.");
                } else {
                    ui.weak(format!("No sound matches “{}”.", self.search.trim()));
                }
            });
            return None;
        }
        // Leave room for the scroll bar so the last column never slides under it.
        let width = ui.available_width() - ui.spacing().scroll.bar_width - 4.0;
        let cols = (((width + GAP) / (TILE.x + GAP)).floor() as usize).max(1);
        let tile_w = ((width - GAP * (cols as f32 - 1.0)) / cols as f32).clamp(TILE.x, 240.0);
        let size = vec2(tile_w, TILE.y);
        let rows = shown.len().div_ceil(cols);
        let mut action = None;
        let mut moved = None;
        self.visible.clear();
        egui::ScrollArea::vertical().auto_shrink(false).show_rows(
            ui,
            TILE.y + GAP,
            rows,
            |ui, range| {
                for row in range {
                    ui.horizontal(|ui| {
                        ui.spacing_mut().item_spacing.x = GAP;
                        for &(index, id) in shown.iter().skip(row * cols).take(cols) {
                            self.visible.push(id);
                            let (r, a) = tile(ui, core, index, id, size);
                            if a.is_some() {
                                action = a;
                            }
                            if let Some(from) = r {
                                moved = Some((from, index));
                            }
                        }
                    });
                    ui.add_space(GAP - ui.spacing().item_spacing.y);
                }
            },
        );
        if let Some((from, to)) = moved {
            core.board.move_sound(self.tab, from, to);
            core.save();
        }
        action
    }
}

/// Draws one sound button. Returns (a tile dropped on it: its index, an action).
fn tile(
    ui: &mut egui::Ui,
    core: &mut Core,
    index: usize,
    id: u64,
    size: egui::Vec2,
) -> (Option<usize>, Option<BoardAction>) {
    let Some(sound) = core.board.sound(id).cloned() else {
        return (None, None);
    };
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let state = core.sound_state(id);
    let missing = core.is_missing(id);
    let progress = core.progress(id);
    let waiting = core.is_waiting_to_play(id);
    let problem = if missing {
        Some(format!("File not found: {}", sound.path.display()))
    } else if let Some(SoundState::Failed { reason }) = &state {
        Some(reason.clone())
    } else {
        None
    };
    super::probe::mark(&format!("Sound {}", sound.name), rect);
    response.widget_info(|| {
        let mut info = egui::WidgetInfo::labeled(egui::Role::Button, true, &sound.name);
        info.value = progress.map(|p| f64::from(p) * 100.0);
        info
    });
    let response = response.on_hover_ui(|ui| {
        ui.strong(&sound.name);
        ui.weak(sound.path.display().to_string());
        if let Some(p) = &problem {
            ui.colored_label(style::BAD, p);
        }
        ui.weak("Click to play · right-click to edit · drag to reorder");
    });

    if ui.is_rect_visible(rect) {
        let lufs = core.loudness(&sound).and_then(|m| m.lufs);
        paint_tile(
            ui,
            rect,
            &response,
            &sound,
            &state,
            lufs,
            progress,
            waiting,
            problem.is_some(),
        );
    }

    let mut action = None;
    if response.clicked() {
        core.play(id);
    }
    response.dnd_set_drag_payload(Dragged(index));
    let mut dropped = None;
    if let Some(from) = response.dnd_hover_payload::<Dragged>()
        && from.0 != index
    {
        ui.painter().rect_stroke(
            rect.expand(3.0),
            CornerRadius::same(12),
            Stroke::new(2.0, style::ACCENT),
            egui::StrokeKind::Outside,
        );
    }
    if let Some(from) = response.dnd_release_payload::<Dragged>() {
        dropped = Some(from.0);
    }
    response.context_menu(|ui| {
        let edit = ui.button("✏ Edit…");
        super::probe::mark("Edit menu item", edit.rect);
        if edit.clicked() {
            action = Some(BoardAction::Edit(id));
            ui.close();
        }
        if ui.button("Reload file").clicked() {
            core.reload_sound(id);
            ui.close();
        }
        let tabs: Vec<String> = core.board.tabs.iter().map(|t| t.name.clone()).collect();
        if tabs.len() > 1 {
            ui.menu_button("Move to tab", |ui| {
                for (t, name) in tabs.iter().enumerate() {
                    if ui.button(name).clicked() {
                        core.move_to_tab(id, t);
                        ui.close();
                    }
                }
            });
        }
        ui.separator();
        if ui.button("🗑 Remove from board").clicked() {
            core.remove_sound(id);
            ui.close();
        }
    });
    (dropped, action)
}

#[allow(clippy::too_many_arguments)]
fn paint_tile(
    ui: &egui::Ui,
    rect: egui::Rect,
    response: &egui::Response,
    sound: &crate::board::Sound,
    state: &Option<SoundState>,
    lufs: Option<f64>,
    progress: Option<f32>,
    waiting: bool,
    broken: bool,
) {
    let painter = ui.painter_at(rect.expand(4.0));
    let base = style::rgb(sound.colour);
    let dark = ui.visuals().dark_mode;
    let mut fill = if dark {
        base.gamma_multiply(0.55)
    } else {
        base.gamma_multiply(0.85)
    };
    if broken {
        fill = Color32::from_gray(if dark { 60 } else { 170 });
    }
    if response.hovered() {
        fill = fill.gamma_multiply(1.25);
    }
    if response.is_pointer_button_down_on() {
        fill = fill.gamma_multiply(0.85);
    }
    let radius = CornerRadius::same(10);
    let playing = progress.is_some();
    painter.rect_filled(rect, radius, fill);
    // A lighter band at the top gives the tile some depth.
    let mut band = rect;
    band.set_height(4.0);
    painter.rect_filled(
        band,
        CornerRadius {
            nw: 10,
            ne: 10,
            sw: 0,
            se: 0,
        },
        base,
    );
    let stroke = if playing {
        Stroke::new(2.0, Color32::WHITE)
    } else {
        Stroke::new(1.0, base.gamma_multiply(0.9))
    };
    painter.rect_stroke(rect, radius, stroke, egui::StrokeKind::Inside);

    let text = Color32::WHITE;
    let inner = rect.shrink2(vec2(12.0, 10.0));
    let name = painter.layout(
        sound.name.clone(),
        FontId::proportional(16.0),
        text,
        inner.width() - if broken { 22.0 } else { 0.0 },
    );
    let name_rect = name.rect;
    let _ = name_rect;
    painter.galley(inner.left_top() + vec2(0.0, 2.0), name, text);

    let info = match state {
        _ if waiting => "loading…".to_owned(),
        // The measured loudness, so a streamer sees which clip is the quiet one.
        Some(SoundState::Ready { duration, .. }) => match lufs {
            Some(l) => format!("{} · {l:.0} LUFS", style::duration(*duration)),
            None => style::duration(*duration),
        },
        Some(SoundState::Decoding { progress }) => format!("loading {:.0}%", progress * 100.0),
        Some(SoundState::Failed { .. }) => "can't play".to_owned(),
        _ if broken => "missing".to_owned(),
        _ => String::new(),
    };
    let mut flags = info;
    if sound.looped {
        flags.push_str(if flags.is_empty() { "🔁" } else { "  🔁" });
    }
    painter.text(
        inner.left_bottom(),
        Align2::LEFT_BOTTOM,
        flags,
        FontId::proportional(12.0),
        text.gamma_multiply(0.8),
    );
    if !sound.hotkey.is_empty() {
        let g = painter.layout_no_wrap(sound.hotkey.clone(), FontId::monospace(11.0), text);
        let chip = egui::Rect::from_min_size(
            inner.right_bottom() - g.size() - vec2(8.0, 2.0),
            g.size() + vec2(8.0, 4.0),
        );
        painter.rect_filled(chip, CornerRadius::same(4), Color32::from_black_alpha(90));
        painter.galley(chip.min + vec2(4.0, 2.0), g, text);
    }
    if broken {
        let c = rect.right_top() + vec2(-16.0, 16.0);
        painter.circle_filled(c, 9.0, style::BAD);
        painter.text(
            c,
            Align2::CENTER_CENTER,
            "!",
            FontId::proportional(13.0),
            text,
        );
    }
    if let Some(p) = progress {
        let track = egui::Rect::from_min_max(
            rect.left_bottom() + vec2(6.0, -7.0),
            rect.right_bottom() + vec2(-6.0, -3.0),
        );
        painter.rect_filled(track, CornerRadius::same(2), Color32::from_black_alpha(110));
        let mut bar = track;
        bar.set_width(track.width() * p.clamp(0.0, 1.0));
        painter.rect_filled(bar, CornerRadius::same(2), Color32::WHITE);
    }
}

/// Whether a native file dialog can open: on Linux it goes through the desktop portal on the
/// session bus, which CI, Xvfb and bare window managers do not have.
fn file_dialog_available() -> bool {
    !cfg!(target_os = "linux") || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
}
