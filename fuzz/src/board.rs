//! What a hand-edited or shared board file and its hotkey strings can hold.

use std::collections::HashSet;
use std::str::FromStr;

use voxboard_board::{Board, keys};

/// board.json as the app loads it (`board::store`: parse, then `sanitise`). Properties: a
/// repaired board has a tab, unique non-zero ids below `next_id`, gains, volumes, trims and
/// fades in range; repairing again changes nothing; it saves and loads back the same; and a
/// sound added to it gets a fresh id.
pub fn board_json(data: &[u8]) {
    let Ok(mut board) = serde_json::from_slice::<Board>(data) else {
        return;
    };
    board.sanitise();
    assert!(!board.tabs.is_empty(), "no tab");
    let mut ids = HashSet::new();
    for s in board.sounds() {
        assert!(
            s.id != 0 && ids.insert(s.id),
            "id {} zero or repeated",
            s.id
        );
        assert!(s.id < board.next_id, "id {} not below next_id", s.id);
        assert!((0.0..=2.0).contains(&s.gain), "gain {}", s.gain);
        for v in [
            s.trim_start,
            s.fade_in,
            s.fade_out,
            s.trim_end.unwrap_or(0.0),
        ] {
            assert!(v.is_finite() && v >= 0.0, "seconds {v}");
        }
    }
    let set = &board.settings;
    for v in [set.master_volume, set.monitor_volume, set.mic_gain] {
        assert!((0.0..=2.0).contains(&v), "volume {v}");
    }
    let mut again = board.clone();
    again.sanitise();
    assert_eq!(again, board, "sanitise is not idempotent");
    let saved = serde_json::to_vec(&board).expect("a repaired board saves");
    let mut loaded: Board = serde_json::from_slice(&saved).expect("a saved board loads");
    loaded.sanitise();
    assert_eq!(loaded, board, "the board changed through save and load");
    let id = board.add_sound(0, "new.wav".into());
    assert!(!ids.contains(&id), "add_sound reused id {id}");
}

/// A hotkey string through both parsers the app runs it through: ours (the in-window
/// shortcut and conflict check) and `global-hotkey`'s (the system-wide grab). Property: no
/// panic, and our canonical spelling of a key parses back to the same key.
pub fn hotkey_strings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(shortcut) = keys::parse(text) {
        let canon = keys::canonical(&shortcut);
        assert_eq!(keys::parse(&canon), Ok(shortcut), "{text:?} → {canon:?}");
    }
    let _ = global_hotkey::hotkey::HotKey::from_str(text);
}
