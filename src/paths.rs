//! Where Voxboard keeps its files on each platform, in one place.
//!
//! | | board (config) | runtime file of the control API |
//! |---|---|---|
//! | Linux | `$XDG_CONFIG_HOME/voxboard` (`~/.config/voxboard`) | `$XDG_RUNTIME_DIR`, else `~/.cache/voxboard` |
//! | Windows | `%APPDATA%\Voxboard` | `%LOCALAPPDATA%\Voxboard` |
//! | macOS | `~/Library/Application Support/voxboard` | `~/Library/Caches/voxboard` |
//!
//! `VOXBOARD_CONFIG_DIR` and `VOXBOARD_RUNTIME_DIR` override them (tests, several setups side
//! by side). On Windows the XDG variables are ignored: Wine passes the Linux environment through,
//! and a Unix path there would name a folder on the current drive.

use std::path::{Path, PathBuf};

pub const ENV_CONFIG_DIR: &str = "VOXBOARD_CONFIG_DIR";
pub const ENV_RUNTIME_DIR: &str = "VOXBOARD_RUNTIME_DIR";

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The board's folder; `None` where the platform has no home directory.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = env_dir(ENV_CONFIG_DIR) {
        return Some(dir);
    }
    if cfg!(windows) {
        // Roaming AppData, under the product's own name (not `voxboard\config`, which is what
        // `ProjectDirs` would give and what a Windows user would not look for).
        directories::BaseDirs::new().map(|b| b.config_dir().join("Voxboard"))
    } else {
        directories::ProjectDirs::from("", "", "voxboard").map(|p| p.config_dir().to_path_buf())
    }
}

/// The folder for files that live only while the app runs; private to the user.
pub fn runtime_dir() -> Option<PathBuf> {
    if let Some(dir) = env_dir(ENV_RUNTIME_DIR) {
        return Some(dir);
    }
    if cfg!(windows) {
        // Local (not roaming) AppData: per user and per machine, like a runtime dir.
        return directories::BaseDirs::new().map(|b| b.data_local_dir().join("Voxboard"));
    }
    env_dir("XDG_RUNTIME_DIR").or_else(|| {
        directories::ProjectDirs::from("", "", "voxboard").map(|p| p.cache_dir().to_path_buf())
    })
}

/// Builds before this module kept the Windows board in `%APPDATA%\voxboard\config`; moves what
/// is there (the board and its backups) up into `dir` once, when `dir` has no board yet.
/// Returns what was moved. A failure leaves the old files where they are, to be found again.
pub fn migrate_legacy_config(dir: &Path, file_names: &[&str]) -> Vec<PathBuf> {
    let old = dir.join("config");
    let mut moved = Vec::new();
    if dir.join(file_names[0]).exists() || !old.join(file_names[0]).exists() {
        return moved;
    }
    for name in file_names {
        let from = old.join(name);
        if from.exists() && std::fs::rename(&from, dir.join(name)).is_ok() {
            moved.push(dir.join(name));
        }
    }
    // Only goes if it is empty now.
    let _ = std::fs::remove_dir(&old);
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 2] = ["board.json", "board.json.bak"];

    #[test]
    fn a_legacy_board_moves_up_once() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("config");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("board.json"), "{\"old\":1}").unwrap();
        std::fs::write(old.join("board.json.bak"), "bak").unwrap();

        let moved = migrate_legacy_config(dir.path(), &NAMES);
        assert_eq!(moved.len(), 2);
        let board = std::fs::read_to_string(dir.path().join("board.json")).unwrap();
        assert_eq!(board, "{\"old\":1}");
        assert!(!old.exists(), "the emptied legacy folder is removed");
    }

    #[test]
    fn an_existing_board_is_never_replaced_by_a_legacy_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("config");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("board.json"), "old").unwrap();
        std::fs::write(dir.path().join("board.json"), "new").unwrap();

        assert!(migrate_legacy_config(dir.path(), &NAMES).is_empty());
        let board = std::fs::read_to_string(dir.path().join("board.json")).unwrap();
        assert_eq!(board, "new");
        assert!(
            old.join("board.json").exists(),
            "the legacy file is left alone"
        );
    }
}
