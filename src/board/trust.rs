//! Gateway URLs the user allowed to receive the bot token. A non-default `gateway_url` in a board
//! file decides where the keyring token goes, and board files get shared; so the app asks before
//! the first connection to such a URL, and remembers the answer here, in a file of its own next
//! to the board (`trusted-gateways.json`), never in the board: a board passed around must not
//! carry the approval of the URL it names.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use voxboard_voice::discord::ws::DISCORD_GATEWAY;

pub const FILE_NAME: &str = "trusted-gateways.json";

/// Whether `url` is Discord's own gateway (which needs no confirmation).
pub fn is_default(url: &str) -> bool {
    url.trim().trim_end_matches('/') == DISCORD_GATEWAY.trim_end_matches('/')
}

#[derive(Clone)]
pub struct TrustedGateways {
    path: PathBuf,
    urls: Arc<Mutex<BTreeSet<String>>>,
}

impl TrustedGateways {
    /// Reads the list in `dir`; a missing or damaged file is an empty list (nothing trusted).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(FILE_NAME);
        let urls = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), "trusted gateways unreadable, asking again: {e}");
                BTreeSet::new()
            }),
            Err(_) => BTreeSet::new(),
        };
        Self {
            path,
            urls: Arc::new(Mutex::new(urls)),
        }
    }

    pub fn contains(&self, url: &str) -> bool {
        self.lock().contains(url.trim())
    }

    /// Trusts `url` from now on; the file is written on a thread of its own (the UI never
    /// waits on the disk), each write under the lock with the whole list, so the last one holds
    /// every URL.
    pub fn allow(&self, url: &str) {
        self.lock().insert(url.trim().to_owned());
        let this = self.clone();
        let _ = std::thread::Builder::new()
            .name("voxboard-trust-save".into())
            .spawn(move || {
                let urls = this.lock();
                if let Err(e) = write_atomically(&this.path, &urls) {
                    tracing::warn!(file = %this.path.display(), "trusted gateways not saved: {e}");
                }
            });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.urls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn write_atomically(path: &Path, urls: &BTreeSet<String>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&serde_json::to_vec_pretty(urls)?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_itself_needs_no_confirmation() {
        assert!(is_default(DISCORD_GATEWAY));
        assert!(is_default("wss://gateway.discord.gg/"));
        assert!(!is_default("wss://gateway.discord.gg.evil.example"));
        assert!(!is_default("ws://127.0.0.1:9"));
    }

    #[test]
    fn an_allowed_url_is_remembered_and_a_damaged_list_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = TrustedGateways::load(dir.path());
        assert!(!t.contains("wss://example.org"));
        t.allow("wss://example.org");
        assert!(t.contains("wss://example.org"));
        let path = dir.path().join(FILE_NAME);
        for _ in 0..500 {
            if TrustedGateways::load(dir.path()).contains("wss://example.org") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(TrustedGateways::load(dir.path()).contains("wss://example.org"));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(!TrustedGateways::load(dir.path()).contains("wss://example.org"));
    }
}
