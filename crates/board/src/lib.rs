//! The board: what the streamer arranged (tabs of sounds) and chose (settings). Plain data,
//! serialised as JSON in the platform config dir by the app's `board::store`. The bot token is
//! deliberately not part of it: it lives in the OS keyring (or in memory for one run), never in
//! these files.
//!
//! A crate of its own, without the GUI stack, so the fuzzer can feed it hand-edited files
//! (`fuzz/`: board_json, hotkey_strings) without building eframe.

mod api_key;
pub mod keys;

pub use api_key::ApiKey;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use voxboard_audio::shaping::Shape;
use voxboard_voice::engine::Retrigger;

/// The control API's first port (the app's `api::DEFAULT_PORT`).
pub const DEFAULT_API_PORT: u16 = 7337;

/// The largest sound id a board keeps: ids stay exact in every JSON tool (JavaScript numbers;
/// Stream Deck plugins are JavaScript), and handing out the next one never overflows. A file
/// with a larger id gets it renumbered.
pub const MAX_SOUND_ID: u64 = (1 << 53) - 1;

/// Bumped when the file format changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Board {
    pub version: u32,
    pub tabs: Vec<Tab>,
    pub settings: Settings,
    /// The next sound id to hand out; ids are never reused.
    pub next_id: u64,
}

impl Default for Board {
    fn default() -> Self {
        Self {
            version: FORMAT_VERSION,
            tabs: vec![Tab::new("Sounds")],
            settings: Settings::default(),
            next_id: 1,
        }
    }
}

/// A tab (folder) of sounds, in the order they are shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tab {
    pub name: String,
    pub sounds: Vec<Sound>,
}

impl Default for Tab {
    fn default() -> Self {
        Self::new("Sounds")
    }
}

impl Tab {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            sounds: Vec::new(),
        }
    }
}

/// One button on the board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sound {
    /// Stable across runs and edits (hotkeys and the engine's retrigger policy key on it).
    pub id: u64,
    pub name: String,
    pub path: PathBuf,
    /// Linear gain, 0..=2.
    pub gain: f32,
    /// A hotkey such as "Ctrl+Shift+1" or "F5"; empty for none.
    pub hotkey: String,
    /// sRGB colour of the button.
    pub colour: [u8; 3],
    pub retrigger: Retrigger,
    #[serde(rename = "loop")]
    pub looped: bool,
    /// Guild ids to play into; empty means every connected guild.
    pub targets: Vec<u64>,
    /// Bring the clip to the board's loudness target.
    pub normalise: bool,
    /// Sounds of one choke group stop each other: the newest wins (e.g. music beds).
    pub choke_group: Option<u32>,
    /// Non-destructive trim and fades, in seconds of the clip (the file is never rewritten).
    pub trim_start: f64,
    /// `None` plays to the clip's end.
    pub trim_end: Option<f64>,
    pub fade_in: f64,
    pub fade_out: f64,
    /// Play this sound into a guild when someone enters the bot's voice channel there.
    pub entrance: Option<Entrance>,
}

/// Whose arrival in the bot's voice channel plays a sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entrance {
    Anyone,
    /// A Discord user id.
    Member(u64),
}

impl Entrance {
    pub fn matches(self, user_id: u64) -> bool {
        match self {
            Entrance::Anyone => true,
            Entrance::Member(id) => id == user_id,
        }
    }
}

impl Sound {
    /// The trim and fades as the mixer takes them.
    pub fn shape(&self) -> Shape {
        Shape {
            start: self.trim_start,
            end: self.trim_end,
            fade_in: self.fade_in,
            fade_out: self.fade_out,
        }
    }
}

impl Default for Sound {
    fn default() -> Self {
        Self {
            id: 0,
            name: String::new(),
            path: PathBuf::new(),
            gain: 1.0,
            hotkey: String::new(),
            colour: PALETTE[0],
            retrigger: Retrigger::Overlap,
            looped: false,
            targets: Vec::new(),
            normalise: true,
            choke_group: None,
            trim_start: 0.0,
            trim_end: None,
            fade_in: 0.0,
            fade_out: 0.0,
            entrance: None,
        }
    }
}

/// Button colours offered in the edit dialog (and cycled through for new sounds).
pub const PALETTE: [[u8; 3]; 8] = [
    [88, 101, 242], // blurple
    [59, 165, 93],  // green
    [250, 166, 26], // amber
    [237, 66, 69],  // red
    [235, 69, 158], // fuchsia
    [26, 188, 156], // teal
    [155, 89, 182], // purple
    [52, 152, 219], // blue
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Theme {
    #[default]
    Dark,
    Light,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Overrides Discord's gateway (e.g. a local simulator); `None` for Discord itself.
    pub gateway_url: Option<String>,
    /// Overrides Discord's REST API base (the simulator's); `None` for Discord itself.
    pub rest_url: Option<String>,
    pub input_device: Option<String>,
    pub output_device: Option<String>,
    pub monitor: bool,
    pub monitor_volume: f32,
    pub master_volume: f32,
    pub mic_gain: f32,
    /// Guild ids the microphone goes to while push-to-talk is held; empty means every
    /// connected guild (also boards saved before the routing matrix had a microphone row).
    pub mic_targets: Vec<u64>,
    pub push_to_talk_key: String,
    pub stop_all_key: String,
    pub theme: Theme,
    /// Guild id → the voice channel to rejoin on start.
    pub connections: BTreeMap<u64, u64>,
    pub loudness_target_lufs: f64,
    /// Join deafened (the default): a soundboard never listens, and an undeafened bot makes
    /// Discord send it everyone's audio for nothing.
    pub deafen_bot: bool,
    /// The local control API (Stream Deck, Companion, `voxboard trigger`).
    pub api: ApiSettings,
    /// An entrance sound plays at most once per member and guild in this many seconds, so
    /// someone hopping in and out does not spam the channel.
    pub entrance_cooldown_secs: f64,
}

/// The local control API: loopback only, behind a per-install key (`docs/control.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    pub enabled: bool,
    /// The first port tried; when it is taken, the next few are (the runtime file says which).
    pub port: u16,
    /// Generated on first use (a board saved before the API existed gets one when loaded).
    pub key: ApiKey,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            port: DEFAULT_API_PORT,
            key: ApiKey::generate(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            gateway_url: None,
            rest_url: None,
            input_device: None,
            output_device: None,
            monitor: true,
            monitor_volume: 0.8,
            master_volume: 1.0,
            mic_gain: 1.0,
            mic_targets: Vec::new(),
            push_to_talk_key: String::new(),
            stop_all_key: String::new(),
            theme: Theme::Dark,
            connections: BTreeMap::new(),
            loudness_target_lufs: -16.0,
            deafen_bot: true,
            api: ApiSettings::default(),
            entrance_cooldown_secs: 60.0,
        }
    }
}

impl Board {
    /// Adds a sound file to a tab, named after the file; returns its id.
    pub fn add_sound(&mut self, tab: usize, path: PathBuf) -> u64 {
        let mut id = self.next_id.max(self.max_id().saturating_add(1));
        if id > MAX_SOUND_ID {
            // 2^53 sounds later: the lowest free id rather than one past the cap.
            let used: HashSet<u64> = self.sounds().map(|s| s.id).collect();
            id = free_id(&mut 1, &used);
        }
        self.next_id = id + 1;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace(['_', '-'], " "))
            .unwrap_or_else(|| format!("Sound {id}"));
        let colour = PALETTE[(id as usize) % PALETTE.len()];
        if self.tabs.is_empty() {
            self.tabs.push(Tab::default());
        }
        let tab = tab.min(self.tabs.len() - 1);
        self.tabs[tab].sounds.push(Sound {
            id,
            name: capitalise(&name),
            path,
            colour,
            ..Sound::default()
        });
        id
    }

    fn max_id(&self) -> u64 {
        self.sounds().map(|s| s.id).max().unwrap_or(0)
    }

    pub fn sounds(&self) -> impl Iterator<Item = &Sound> {
        self.tabs.iter().flat_map(|t| t.sounds.iter())
    }

    pub fn sound(&self, id: u64) -> Option<&Sound> {
        self.sounds().find(|s| s.id == id)
    }

    pub fn sound_mut(&mut self, id: u64) -> Option<&mut Sound> {
        self.tabs
            .iter_mut()
            .flat_map(|t| t.sounds.iter_mut())
            .find(|s| s.id == id)
    }

    pub fn remove_sound(&mut self, id: u64) -> Option<Sound> {
        for tab in &mut self.tabs {
            if let Some(at) = tab.sounds.iter().position(|s| s.id == id) {
                return Some(tab.sounds.remove(at));
            }
        }
        None
    }

    /// Moves the sound at `from` to `to` within a tab (drag-and-drop reordering).
    pub fn move_sound(&mut self, tab: usize, from: usize, to: usize) {
        let Some(tab) = self.tabs.get_mut(tab) else {
            return;
        };
        if from >= tab.sounds.len() || from == to {
            return;
        }
        let sound = tab.sounds.remove(from);
        let to = to.min(tab.sounds.len());
        tab.sounds.insert(to, sound);
    }

    /// Repairs what a hand-edited file may have broken: duplicate, zero or too large ids
    /// (above [`MAX_SOUND_ID`]; `u64::MAX` once overflowed here), no tabs.
    pub fn sanitise(&mut self) {
        if self.tabs.is_empty() {
            self.tabs.push(Tab::default());
        }
        let valid = |id: u64| (1..=MAX_SOUND_ID).contains(&id);
        let mut seen = HashSet::new();
        let top = self.sounds().map(|s| s.id).filter(|&id| valid(id)).max();
        let mut next = top.unwrap_or(0) + 1;
        for sound in self.tabs.iter_mut().flat_map(|t| t.sounds.iter_mut()) {
            if !valid(sound.id) || !seen.insert(sound.id) {
                sound.id = free_id(&mut next, &seen);
                seen.insert(sound.id);
            }
            sound.gain = if sound.gain.is_finite() {
                sound.gain.clamp(0.0, 2.0)
            } else {
                1.0
            };
            // Seconds: nothing negative or non-finite (the clip's length clamps the rest).
            let secs = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
            sound.trim_start = secs(sound.trim_start);
            sound.trim_end = sound.trim_end.filter(|v| v.is_finite()).map(secs);
            sound.fade_in = secs(sound.fade_in);
            sound.fade_out = secs(sound.fade_out);
        }
        // Above every id, and never past the cap (so `add_sound` cannot overflow).
        self.next_id = self.next_id.max(self.max_id() + 1).min(MAX_SOUND_ID + 1);
        let s = &mut self.settings;
        for v in [&mut s.master_volume, &mut s.monitor_volume, &mut s.mic_gain] {
            *v = if v.is_finite() {
                v.clamp(0.0, 2.0)
            } else {
                1.0
            };
        }
    }
}

/// The first id from `next` on that is valid and not in `used`, starting over at 1 past the
/// cap. Always found: a board has far fewer sounds than ids.
fn free_id(next: &mut u64, used: &HashSet<u64>) -> u64 {
    loop {
        if *next == 0 || *next > MAX_SOUND_ID {
            *next = 1;
        }
        if !used.contains(next) {
            return *next;
        }
        *next += 1;
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the board_json fuzzer: a fade written as a 44-digit number came back one ulp
    /// different after a save and a load (serde_json's default float parser is not exact).
    #[test]
    fn numbers_survive_a_save_and_a_load_exactly() {
        let mut board: Board = serde_json::from_str(
            r#"{"tabs": [{"name": "Sounds", "sounds": [{"id": 1, "name": "Horn",
                "fade_in": 66666666666666666666666666666666666666666666}]}], "next_id": 2}"#,
        )
        .unwrap();
        board.sanitise();
        let saved = serde_json::to_string(&board).unwrap();
        let mut loaded: Board = serde_json::from_str(&saved).unwrap();
        loaded.sanitise();
        assert_eq!(loaded, board);
    }

    #[test]
    fn a_board_saved_before_the_deafen_setting_joins_deafened() {
        let old: Settings = serde_json::from_str(r#"{"master_volume": 0.5}"#).unwrap();
        assert!(old.deafen_bot);
        assert_eq!(old.master_volume, 0.5);
        assert!(
            old.mic_targets.is_empty(),
            "the microphone goes to every guild"
        );
    }

    #[test]
    fn an_old_board_gets_an_api_key_that_is_then_kept() {
        let old: Board = serde_json::from_str(r#"{"settings": {"master_volume": 0.5}}"#).unwrap();
        let key = &old.settings.api.key;
        assert!(key.is_fresh(), "made now: the app must save it");
        assert!(old.settings.api.enabled);
        let saved = serde_json::to_string(&old).unwrap();
        let again: Board = serde_json::from_str(&saved).unwrap();
        assert_eq!(&again.settings.api.key, key);
        assert!(!again.settings.api.key.is_fresh());
    }

    #[test]
    fn a_sound_saved_before_shaping_plays_whole_and_ungrouped() {
        let old: Sound = serde_json::from_str(r#"{"id": 3, "name": "Horn", "gain": 0.5}"#).unwrap();
        assert!(old.shape().is_identity());
        assert_eq!(old.choke_group, None);
        assert_eq!(old.gain, 0.5);
    }

    #[test]
    fn ids_are_stable_and_never_reused() {
        let mut b = Board::default();
        let a = b.add_sound(0, "a/air_horn.wav".into());
        let c = b.add_sound(0, "b.wav".into());
        assert_ne!(a, c);
        assert_eq!(b.sound(a).map(|s| s.name.as_str()), Some("Air horn"));
        b.remove_sound(c);
        let d = b.add_sound(0, "c.wav".into());
        assert!(d > c);
    }

    #[test]
    fn reorder_moves_within_a_tab() {
        let mut b = Board::default();
        let ids: Vec<u64> = ["1", "2", "3"]
            .iter()
            .map(|n| b.add_sound(0, format!("{n}.wav").into()))
            .collect();
        b.move_sound(0, 0, 2);
        let order: Vec<u64> = b.tabs[0].sounds.iter().map(|s| s.id).collect();
        assert_eq!(order, [ids[1], ids[2], ids[0]]);
    }

    #[test]
    fn sanitise_fixes_duplicate_ids_and_bad_gains() {
        let mut b = Board::default();
        b.add_sound(0, "a.wav".into());
        b.add_sound(0, "b.wav".into());
        b.tabs[0].sounds[1].id = b.tabs[0].sounds[0].id;
        b.tabs[0].sounds[1].gain = f32::NAN;
        b.tabs[0].sounds[1].trim_start = -2.0;
        b.tabs[0].sounds[1].trim_end = Some(f64::NAN);
        b.sanitise();
        assert_eq!(b.tabs[0].sounds[1].trim_start, 0.0);
        assert_eq!(b.tabs[0].sounds[1].trim_end, None);
        assert_ne!(b.tabs[0].sounds[0].id, b.tabs[0].sounds[1].id);
        assert_eq!(b.tabs[0].sounds[1].gain, 1.0);
    }

    #[test]
    fn ids_at_the_top_of_u64_are_renumbered_without_overflow() {
        // The issue's "ids near u64::MAX overflow": `max_id() + 1` panicked in sanitise (the
        // board_json fuzz target with fuzz/corpus/board_json/id_u64_max.json).
        let mut b: Board = serde_json::from_str(
            r#"{"tabs": [{"sounds": [{"id": 18446744073709551615}, {"id": 9007199254740991},
                {"id": 9007199254740991}]}], "next_id": 18446744073709551615}"#,
        )
        .unwrap();
        b.sanitise();
        let ids: Vec<u64> = b.sounds().map(|s| s.id).collect();
        assert!(
            ids.iter().all(|&id| (1..=MAX_SOUND_ID).contains(&id)),
            "{ids:?}"
        );
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "{ids:?}");
        assert!(ids.iter().all(|&id| id < b.next_id));
        let again = b.clone();
        b.sanitise();
        assert_eq!(b, again, "a second repair changes nothing");
        let new = b.add_sound(0, "x.wav".into());
        assert!(!ids.contains(&new) && new <= MAX_SOUND_ID, "{new}");
    }
}
