//! Hotkey strings as the board stores them ("Ctrl+Shift+F1", "Alt+A", "F5", "Space"): parsed
//! into egui's key and modifiers, and written one canonical way so two spellings of one key
//! combination are seen to conflict. The app's `board::hotkeys` binds them.

/// A key combination as egui sees it, for in-window shortcuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortcut {
    pub modifiers: egui::Modifiers,
    pub key: egui::Key,
}

/// Parses "Ctrl+Shift+F1", "Alt+A", "F5", "Space" (case-insensitive; modifiers first).
pub fn parse(keys: &str) -> Result<Shortcut, String> {
    let parts: Vec<&str> = keys.split('+').map(str::trim).collect();
    let Some((key, mods)) = parts.split_last() else {
        return Err("empty hotkey".into());
    };
    let mut modifiers = egui::Modifiers::NONE;
    for m in mods {
        match m.to_ascii_lowercase().as_str() {
            "ctrl" | "control" => modifiers.ctrl = true,
            "shift" => modifiers.shift = true,
            "alt" | "option" => modifiers.alt = true,
            "super" | "cmd" | "command" | "meta" => modifiers.mac_cmd = true,
            other => {
                return Err(format!(
                    "'{other}' is not a modifier (Ctrl, Shift, Alt, Super)"
                ));
            }
        }
    }
    let key = egui::Key::from_name(key)
        .or_else(|| egui::Key::from_name(&key.to_ascii_uppercase()))
        .or_else(|| egui::Key::from_name(&title_case(key)))
        .ok_or_else(|| format!("'{key}' is not a key name (try A, 1, F5, Space)"))?;
    Ok(Shortcut { modifiers, key })
}

fn title_case(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut c = lower.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The same key combination written one way, so "ctrl+a" and "Ctrl + A" conflict.
pub fn canonical(s: &Shortcut) -> String {
    let m = s.modifiers;
    let mut out = String::new();
    for (on, name) in [
        (m.ctrl, "Ctrl+"),
        (m.shift, "Shift+"),
        (m.alt, "Alt+"),
        (m.mac_cmd, "Super+"),
    ] {
        if on {
            out.push_str(name);
        }
    }
    out + s.key.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let s = parse("Ctrl+Shift+F1").expect("parse");
        assert!(s.modifiers.ctrl && s.modifiers.shift);
        assert_eq!(s.key, egui::Key::F1);
        assert_eq!(parse("a").map(|s| s.key), Ok(egui::Key::A));
        assert_eq!(parse("space").map(|s| s.key), Ok(egui::Key::Space));
        assert!(parse("Hyper+A").is_err());
        assert!(parse("Ctrl+NoSuchKey").is_err());
    }
}
