//! Where the board lives on disk, and how it gets there safely.
//!
//! The file is `board.json` in the platform config dir (`VOXBOARD_CONFIG_DIR` overrides it;
//! tests and the demo use a temp dir). Saves are atomic (temp file in the same dir, fsync,
//! rename, fsync of the dir), so a crash mid-save leaves the old board or the new one, never a
//! torn file. A file that cannot be parsed is moved aside to `board.json.bak` with its bytes
//! untouched, and the app starts with an empty board and tells the user why. Saves run on
//! their own thread so the UI never waits on the disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Board;

pub const FILE_NAME: &str = "board.json";
pub const ENV_CONFIG_DIR: &str = "VOXBOARD_CONFIG_DIR";

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    pub board: Board,
    /// Something the user must be told (a damaged file moved aside, an unreadable file).
    pub notice: Option<String>,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `VOXBOARD_CONFIG_DIR`, else the platform config dir (e.g. `~/.config/voxboard`), else
    /// `./voxboard-config` when the platform has no home directory.
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os(ENV_CONFIG_DIR).filter(|d| !d.is_empty()) {
            return Self::new(dir);
        }
        match directories::ProjectDirs::from("", "", "voxboard") {
            Some(p) => Self::new(p.config_dir()),
            None => Self::new("voxboard-config"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    pub fn backup_path(&self) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.bak"))
    }

    /// Reads the board; never fails: problems become a default board plus a notice.
    pub fn load(&self) -> Loaded {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Loaded {
                    board: Board::default(),
                    notice: None,
                };
            }
            Err(e) => {
                return Loaded {
                    board: Board::default(),
                    notice: Some(format!(
                        "Could not read your board ({}): {e}. Started with an empty board; \
                         saving may fail too.",
                        path.display()
                    )),
                };
            }
        };
        match serde_json::from_slice::<Board>(&bytes) {
            Ok(mut board) => {
                let notice = (board.version > super::FORMAT_VERSION).then(|| {
                    format!(
                        "Your board was saved by a newer Voxboard (format {}); settings this \
                         version does not know are dropped when it saves.",
                        board.version
                    )
                });
                board.version = super::FORMAT_VERSION;
                board.sanitise();
                Loaded { board, notice }
            }
            Err(parse) => {
                let bak = self.backup_path();
                let kept = match std::fs::rename(&path, &bak) {
                    Ok(()) => format!("The damaged file was kept as {}.", bak.display()),
                    Err(e) => format!(
                        "It could not be moved aside ({e}); it is still at {}.",
                        path.display()
                    ),
                };
                tracing::warn!(file = %path.display(), error = %parse, "board file is damaged");
                Loaded {
                    board: Board::default(),
                    notice: Some(format!(
                        "Your board file could not be read ({parse}). {kept} Voxboard started \
                         with an empty board."
                    )),
                }
            }
        }
    }

    /// Writes the board atomically (temp file + fsync + rename + fsync of the dir).
    pub fn save(&self, board: &Board) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(board).map_err(std::io::Error::other)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".board-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)?;
        tmp.write_all(&json)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.path()).map_err(|e| e.error)?;
        // Make the rename itself durable (a no-op where directories cannot be opened).
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

enum SaveMsg {
    Save(Box<Board>),
    Flush(Sender<()>),
}

/// Saves on a background thread, coalescing bursts (a slider drag) into one write.
pub struct Saver {
    tx: Sender<SaveMsg>,
    error: Arc<Mutex<Option<String>>>,
}

type Hook = Box<dyn Fn() + Send>;

impl Saver {
    /// `on_error` is called (from the saver thread) when a save fails, to repaint the UI.
    pub fn spawn(store: Store, on_error: Option<Hook>) -> Self {
        let (tx, rx) = channel();
        let error = Arc::new(Mutex::new(None));
        let err = error.clone();
        let spawned = std::thread::Builder::new()
            .name("voxboard-save".into())
            .spawn(move || save_loop(store, rx, err, on_error));
        if let Err(e) = spawned {
            *error.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(format!("cannot start the save thread: {e}"));
        }
        Self { tx, error }
    }

    pub fn save(&self, board: &Board) {
        let _ = self.tx.send(SaveMsg::Save(Box::new(board.clone())));
    }

    /// Waits (up to `timeout`) until every save sent so far is on disk. For exit and tests.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = channel();
        if self.tx.send(SaveMsg::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(timeout).is_ok()
    }

    /// The last save error, if the last save failed.
    pub fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn save_loop(
    store: Store,
    rx: Receiver<SaveMsg>,
    error: Arc<Mutex<Option<String>>>,
    on_error: Option<Hook>,
) {
    let mut pending: Option<Box<Board>> = None;
    while let Ok(msg) = rx.recv() {
        let mut flushes = Vec::new();
        let mut handle = |msg| match msg {
            SaveMsg::Save(b) => pending = Some(b),
            SaveMsg::Flush(done) => flushes.push(done),
        };
        handle(msg);
        while let Ok(more) = rx.try_recv() {
            handle(more);
        }
        if let Some(board) = pending.take() {
            let result = store.save(&board).err().map(|e| {
                format!(
                    "Could not save your board to {}: {e}",
                    store.path().display()
                )
            });
            let failed = result.is_some();
            if let Some(msg) = &result {
                tracing::error!("{msg}");
            }
            *error.lock().unwrap_or_else(PoisonError::into_inner) = result;
            if failed && let Some(hook) = &on_error {
                hook();
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path().join("nested"));
        let mut board = Board::default();
        board.add_sound(0, "x.wav".into());
        board.settings.connections.insert(100, 1002);
        store.save(&board).expect("save");
        let loaded = store.load();
        assert!(loaded.notice.is_none());
        assert_eq!(loaded.board, board);
        let names: Vec<_> = std::fs::read_dir(store.dir())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [FILE_NAME]);
    }

    #[test]
    fn missing_file_is_an_empty_board_without_notice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loaded = Store::new(dir.path()).load();
        assert!(loaded.notice.is_none());
        assert_eq!(loaded.board.tabs.len(), 1);
    }
}
