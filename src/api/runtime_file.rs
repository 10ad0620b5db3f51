//! `voxboard-api.json`: where a running app tells command-line tools its API's URL and key
//! (`voxboard-api-demo.json` for `voxboard --demo`, so the demo and the real app can run at
//! once without one hiding the other).
//!
//! It lives in the user's runtime dir ([`crate::paths::runtime_dir`]: `$XDG_RUNTIME_DIR` on
//! Linux, `%LOCALAPPDATA%\Voxboard` on Windows); `VOXBOARD_RUNTIME_DIR` overrides it. The file
//! is created readable by the user only and replaced atomically, and the app removes it on exit
//! if it is still its own.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "voxboard-api.json";
pub const DEMO_FILE_NAME: &str = "voxboard-api-demo.json";

/// Which app a runtime file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    App,
    Demo,
}

impl Instance {
    pub fn file_name(self) -> &'static str {
        match self {
            Instance::App => FILE_NAME,
            Instance::Demo => DEMO_FILE_NAME,
        }
    }
}
pub use crate::paths::ENV_RUNTIME_DIR;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub key: String,
    /// The app's process id (for people looking at the file; nothing relies on it).
    pub pid: u32,
}

impl std::fmt::Debug for RuntimeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeInfo")
            .field("url", &self.url)
            .field("key", &"***")
            .field("pid", &self.pid)
            .finish()
    }
}

/// The directory the file goes in ([`crate::paths::runtime_dir`]); `None` where the platform
/// has none.
pub fn dir() -> Option<PathBuf> {
    crate::paths::runtime_dir()
}

pub fn path_in(dir: &Path, instance: Instance) -> PathBuf {
    dir.join(instance.file_name())
}

/// Writes the file atomically with mode 0600 (a temp file made by `tempfile`, which creates
/// files readable by the owner only, renamed over the old one). Returns its path.
pub fn write(dir: &Path, instance: Instance, info: &RuntimeInfo) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = path_in(dir, instance);
    let mut tmp = tempfile::Builder::new()
        .prefix(".voxboard-api")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    let text = serde_json::to_vec_pretty(info).context("serialising the runtime file")?;
    tmp.write_all(&text)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(&path)
        .with_context(|| format!("moving the runtime file to {}", path.display()))?;
    Ok(path)
}

/// Why the file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// No file: no app is running (or it runs with another runtime dir).
    Missing(PathBuf),
    Unreadable(PathBuf, String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "{} does not exist", p.display()),
            // The reason never quotes the file's content, which holds the key.
            Self::Unreadable(p, why) => write!(f, "{} cannot be read: {why}", p.display()),
        }
    }
}

impl std::error::Error for ReadError {}

pub fn read(dir: &Path, instance: Instance) -> Result<RuntimeInfo, ReadError> {
    let path = path_in(dir, instance);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReadError::Missing(path));
        }
        Err(e) => return Err(ReadError::Unreadable(path, e.to_string())),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json's message names a position, never the content.
        ReadError::Unreadable(path, format!("not a Voxboard runtime file ({e})"))
    })
}

/// Removes the file if it still describes `url` (another app may have written its own since).
pub fn remove_if_ours(path: &Path, url: &str) {
    let ours = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<RuntimeInfo>(&b).ok())
        .is_some_and(|info| info.url == url);
    if ours && let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(target: "voxboard::api", "could not remove {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(url: &str) -> RuntimeInfo {
        RuntimeInfo {
            url: url.into(),
            key: "k3y".into(),
            pid: 1,
        }
    }

    #[test]
    fn written_private_read_back_and_removed_only_when_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), Instance::App, &info("http://127.0.0.1:1")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            read(dir.path(), Instance::App).unwrap(),
            info("http://127.0.0.1:1")
        );
        assert!(!format!("{:?}", read(dir.path(), Instance::App).unwrap()).contains("k3y"));
        assert!(matches!(
            read(dir.path(), Instance::Demo),
            Err(ReadError::Missing(_))
        ));
        write(dir.path(), Instance::App, &info("http://127.0.0.1:2")).unwrap();
        remove_if_ours(&path, "http://127.0.0.1:1");
        assert!(path.exists(), "another app's file stays");
        remove_if_ours(&path, "http://127.0.0.1:2");
        assert!(matches!(
            read(dir.path(), Instance::App),
            Err(ReadError::Missing(_))
        ));
    }
}
