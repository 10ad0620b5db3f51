//! The bot token: kept in the OS keyring (Secret Service, Keychain, Credential Manager), or
//! taken from `DISCORD_TOKEN`, or — when there is no keyring, as in CI — held in memory for
//! this run only. It is never written to the board files and never logged. Keyring calls can
//! wait on D-Bus, so they run on a short-lived thread and report back through a channel.

use std::sync::mpsc::{Receiver, channel};

use voxboard_voice::discord::ws::Token;

const SERVICE: &str = "voxboard";
const ACCOUNT: &str = "discord-bot-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Keyring,
    Env,
    /// Typed in, and kept in memory only (no keyring available, or not saved yet).
    Memory,
    /// The simulator's public test token (demo mode).
    Demo,
}

enum Reply {
    Loaded(Result<Option<String>, String>),
    Saved(Result<(), String>),
    Deleted(Result<(), String>),
}

/// What the settings panel shows and what the app starts the engine with.
pub struct TokenState {
    token: Option<Token>,
    source: Option<Source>,
    /// Plain words about where the token lives ("No keyring service ..."), if noteworthy.
    pub note: Option<String>,
    pending: Option<Receiver<Reply>>,
    use_keyring: bool,
    /// Set once the first lookup has finished (found or not).
    pub looked_up: bool,
    /// Bumped whenever a new token becomes available (the app restarts the engine).
    pub generation: u64,
}

impl TokenState {
    /// Demo mode: the simulator's test token, no keyring.
    pub fn demo(token: &str) -> Self {
        Self {
            token: Some(Token::new(token)),
            source: Some(Source::Demo),
            note: Some(
                "Demo mode: connected to the built-in simulator with its test token.".into(),
            ),
            pending: None,
            use_keyring: false,
            looked_up: true,
            generation: 1,
        }
    }

    /// No token and no lookup (tests; the settings panel asks for one).
    pub fn none() -> Self {
        Self {
            token: None,
            source: None,
            note: Some("Enter your bot token to connect to Discord.".into()),
            pending: None,
            use_keyring: false,
            looked_up: true,
            generation: 0,
        }
    }

    /// Starts looking the token up (keyring first, then `DISCORD_TOKEN`). `use_keyring: false`
    /// skips the keyring (tests).
    pub fn lookup(use_keyring: bool) -> Self {
        let mut s = Self {
            token: None,
            source: None,
            note: None,
            pending: None,
            use_keyring,
            looked_up: false,
            generation: 0,
        };
        if use_keyring {
            s.spawn(|| Reply::Loaded(keyring_get()));
        } else {
            s.finish_lookup(Ok(None));
        }
        s
    }

    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    pub fn source(&self) -> Option<Source> {
        self.source
    }

    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    fn spawn(&mut self, job: impl FnOnce() -> Reply + Send + 'static) {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("voxboard-keyring".into())
            .spawn(move || {
                let _ = tx.send(job());
            });
        match spawned {
            Ok(_) => self.pending = Some(rx),
            Err(e) => self.note = Some(format!("Could not reach the keyring: {e}")),
        }
    }

    /// Applies a finished keyring call, if any. Returns whether something changed.
    pub fn poll(&mut self) -> bool {
        let Some(rx) = &self.pending else {
            return false;
        };
        let reply = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => return false,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.pending = None;
                self.note = Some("The keyring call ended without an answer.".into());
                return true;
            }
        };
        self.pending = None;
        match reply {
            Reply::Loaded(r) => self.finish_lookup(r),
            Reply::Saved(Ok(())) => {
                self.source = Some(Source::Keyring);
                self.note = Some("Saved in the system keyring.".into());
            }
            Reply::Saved(Err(e)) => {
                self.source = Some(Source::Memory);
                self.note = Some(format!(
                    "No keyring service is available ({e}). The token is kept in memory for \
                     this run only and is never written to disk."
                ));
            }
            Reply::Deleted(r) => {
                self.token = None;
                self.source = None;
                self.generation += 1;
                self.note = Some(match r {
                    Ok(()) => "Token removed from the keyring.".into(),
                    Err(e) => format!("Token forgotten for this run; the keyring said: {e}"),
                });
            }
        }
        true
    }

    fn finish_lookup(&mut self, r: Result<Option<String>, String>) {
        self.looked_up = true;
        let keyring_note = match r {
            Ok(Some(t)) if !t.trim().is_empty() => {
                self.set(Token::new(t), Source::Keyring);
                self.note = None;
                return;
            }
            Ok(_) => None,
            Err(e) => Some(format!("No keyring service is available ({e}).")),
        };
        match std::env::var("DISCORD_TOKEN") {
            Ok(t) if !t.trim().is_empty() => {
                self.set(Token::new(t), Source::Env);
                self.note = keyring_note.map(|n| format!("{n} Using DISCORD_TOKEN."));
            }
            _ => {
                self.note = Some(match keyring_note {
                    Some(n) => format!(
                        "{n} Enter the bot token below; it is kept in memory for this run only."
                    ),
                    None => "Enter your bot token to connect to Discord.".into(),
                });
            }
        }
    }

    fn set(&mut self, token: Token, source: Source) {
        self.token = Some(token);
        self.source = Some(source);
        self.generation += 1;
    }

    /// Uses `token` now and tries to store it in the keyring in the background.
    pub fn enter(&mut self, token: String) {
        let token = Token::new(token);
        if token.is_empty() {
            return;
        }
        let secret = token.expose().to_owned();
        self.set(token, Source::Memory);
        if self.use_keyring {
            self.note = Some("Saving in the system keyring…".into());
            self.spawn(move || Reply::Saved(keyring_set(&secret)));
        } else {
            self.note = Some("Kept in memory for this run only.".into());
        }
    }

    /// Forgets the token (and removes it from the keyring).
    pub fn forget(&mut self) {
        if self.use_keyring {
            self.spawn(|| Reply::Deleted(keyring_delete()));
        } else {
            self.token = None;
            self.source = None;
            self.generation += 1;
        }
    }
}

fn entry() -> Result<keyring::Entry, String> {
    keyring::Entry::new(SERVICE, ACCOUNT).map_err(|e| e.to_string())
}

fn keyring_get() -> Result<Option<String>, String> {
    match entry()?.get_password() {
        Ok(p) => Ok(Some(p)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn keyring_set(secret: &str) -> Result<(), String> {
    entry()?.set_password(secret).map_err(|e| e.to_string())
}

fn keyring_delete() -> Result<(), String> {
    match entry()?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
