//! Where the board lives on disk, and how it gets there safely.
//!
//! The file is `board.json` in the platform config dir (`VOXBOARD_CONFIG_DIR` overrides it;
//! tests and the demo use a temp dir). Saves are atomic (temp file in the same dir, fsync,
//! rename, fsync of the dir), so a crash mid-save leaves the old board or the new one, never a
//! torn file. A file that cannot be parsed is moved aside to `board.json.bak` (older ones to
//! `.bak.1` and `.bak.2`) with its bytes untouched, and the app starts with an empty board and
//! tells the user why. A file that exists but cannot be *read* (permissions, I/O) is never
//! overwritten: the store turns read-only and says so. Saves run on their own thread so the UI
//! never waits on the disk, and a failed save (disk full) is retried until it lands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Board;

pub const FILE_NAME: &str = "board.json";
pub use crate::paths::ENV_CONFIG_DIR;
/// Held (an OS file lock) by the app that owns the board folder; see [`Store::claim`].
pub const LOCK_FILE_NAME: &str = "voxboard.lock";

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// Set when the file exists but could not be read: saving would replace a board we never
    /// saw. Shared by every clone (the saver thread's too).
    read_only: Arc<AtomicBool>,
}

/// How many damaged files are kept aside (`board.json.bak`, `.bak.1`, `.bak.2`).
const BACKUPS: usize = 3;

/// The `n`th backup's file name, newest first: `board.json.bak`, `board.json.bak.1`, …
fn backup_name(n: usize) -> String {
    match n {
        0 => format!("{FILE_NAME}.bak"),
        n => format!("{FILE_NAME}.bak.{n}"),
    }
}
/// How often a failed save is tried again.
const SAVE_RETRY: Duration = Duration::from_secs(5);

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    pub board: Board,
    /// Something the user must be told (a damaged file moved aside, an unreadable file).
    pub notice: Option<String>,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            read_only: Arc::default(),
        }
    }

    /// Whether saving is refused because the file could not be read.
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    /// Claims the board folder for this process, for as long as the returned file lives: two
    /// apps on one board would overwrite each other's saves and fight over the bot. `Ok(None)`
    /// when another process holds it (this store is then read-only); an I/O error (a read-only
    /// folder) claims nothing and is not held against starting.
    pub fn claim(&self) -> std::io::Result<Option<std::fs::File>> {
        std::fs::create_dir_all(&self.dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE_NAME))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                self.read_only.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// `VOXBOARD_CONFIG_DIR`, else the platform's config dir ([`crate::paths::config_dir`]),
    /// else `./voxboard-config` when the platform has no home directory.
    pub fn from_env() -> Self {
        let Some(dir) = crate::paths::config_dir() else {
            return Self::new("voxboard-config");
        };
        if cfg!(windows) && std::env::var_os(ENV_CONFIG_DIR).is_none() {
            let names: Vec<String> = std::iter::once(FILE_NAME.to_string())
                .chain((0..BACKUPS).map(backup_name))
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            for moved in crate::paths::migrate_legacy_config(&dir, &names) {
                tracing::info!("moved {} from the old config folder", moved.display());
            }
        }
        Self::new(dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    pub fn backup_path(&self) -> PathBuf {
        self.dir.join(backup_name(0))
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
                self.read_only.store(true, Ordering::Relaxed);
                return Loaded {
                    board: Board::default(),
                    notice: Some(format!(
                        "Could not read your board ({}): {e}. Voxboard opened an empty board \
                         read-only and will not touch the file; fix it (or its permissions) \
                         and restart.",
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
                self.rotate_backups();
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

    /// `board.json.bak` → `.bak.1` → `.bak.2`: the oldest of [`BACKUPS`] goes.
    fn rotate_backups(&self) {
        let path = |n: usize| self.dir.join(backup_name(n));
        for n in (1..BACKUPS).rev() {
            if path(n - 1).exists() {
                let _ = std::fs::rename(path(n - 1), path(n));
            }
        }
    }

    /// Writes the board atomically (temp file + fsync + rename + fsync of the dir).
    pub fn save(&self, board: &Board) -> std::io::Result<()> {
        if self.is_read_only() {
            return Err(std::io::Error::other(
                "the board file could not be read, so it is left untouched (read-only)",
            ));
        }
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
    loop {
        // With a save still pending (it failed), wake to retry it; a newer board replaces it.
        let msg = match pending {
            Some(_) => match rx.recv_timeout(SAVE_RETRY) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(msg) => Some(msg),
                Err(_) => return,
            },
        };
        let mut flushes = Vec::new();
        let mut handle = |msg| match msg {
            SaveMsg::Save(b) => pending = Some(b),
            SaveMsg::Flush(done) => flushes.push(done),
        };
        if let Some(msg) = msg {
            handle(msg);
        }
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
                // Kept for the next try, unless trying again cannot help.
                if !store.is_read_only() {
                    pending = Some(board);
                }
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

    /// A board file that exists but cannot be read is never replaced by an empty board.
    #[test]
    fn an_unreadable_board_is_opened_read_only_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        // A directory where the file should be: reading fails (EISDIR) even for root.
        std::fs::create_dir(store.path()).unwrap();
        std::fs::write(store.path().join("keep"), b"mine").unwrap();
        let loaded = store.load();
        let notice = loaded.notice.expect("the user is told");
        assert!(notice.contains("read-only"), "{notice}");
        assert!(store.is_read_only());
        let err = store
            .save(&loaded.board)
            .expect_err("a read-only board is not saved");
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(std::fs::read(store.path().join("keep")).unwrap(), b"mine");
    }

    /// Damaged files are kept aside, the newest three of them.
    #[test]
    fn damaged_files_keep_three_generations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        for n in 0..4 {
            std::fs::write(store.path(), format!("{{ broken {n}")).unwrap();
            assert!(store.load().notice.is_some());
        }
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("board.json.bak"), "{ broken 3");
        assert_eq!(read("board.json.bak.1"), "{ broken 2");
        assert_eq!(read("board.json.bak.2"), "{ broken 1");
        assert!(!store.path().exists());
    }

    /// A save that fails (here: the config dir cannot be made) is tried again until it lands.
    #[test]
    fn a_failed_save_is_retried_until_it_lands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocked = dir.path().join("config");
        std::fs::write(&blocked, b"a file where the folder should be").unwrap();
        let store = Store::new(&blocked);
        let saver = Saver::spawn(store.clone(), None);
        let mut board = Board::default();
        board.add_sound(0, "x.wav".into());
        saver.save(&board);
        assert!(saver.flush(Duration::from_secs(5)));
        assert!(saver.error().is_some(), "the first save cannot work");
        std::fs::remove_file(&blocked).unwrap();
        let deadline = std::time::Instant::now() + SAVE_RETRY * 3;
        while !store.path().exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(store.load().board, board, "the retry saved the board");
        assert!(saver.flush(Duration::from_secs(5)));
        assert_eq!(saver.error(), None);
    }
}
