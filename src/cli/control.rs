//! `voxboard trigger`, `stop-all` and `ptt`: remote controls for a running app, through its
//! control API. They find the app by its runtime file (`voxboard::api::runtime_file`): the real
//! app's first, else the demo's, so a running app always wins over a demo left open beside it.
//! They exit with codes a Stream Deck action or a script can test (see [`Exit`]).

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use voxboard::api::runtime_file::{self, Instance, ReadError, RuntimeInfo};

/// No app answers: no runtime file, or nothing listens at its address.
pub const NOT_RUNNING: u8 = 3;
/// No sound has that name or id.
pub const NO_SUCH_SOUND: u8 = 4;
/// Several sounds have that name.
pub const AMBIGUOUS: u8 = 5;

/// A failure with its own exit code (anything else exits 1).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

fn exit(code: u8, message: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        message: message.into(),
    }
    .into()
}

/// `voxboard trigger NAME|ID`: a name wins when a sound is called that; a number that names
/// no sound is tried as an id.
pub fn trigger(sound: &str) -> anyhow::Result<()> {
    let app = App::find()?;
    let (mut status, mut body) = app.post("/v1/play", Some(json!({"name": sound})))?;
    if status == 404
        && let Ok(id) = sound.trim().parse::<u64>()
    {
        (status, body) = app.post(&format!("/v1/sounds/{id}/play"), None)?;
    }
    match status {
        200 => println!("playing {}", describe(&body)),
        202 => println!("{} is loading; it plays when ready", describe(&body)),
        404 => {
            let mut message = format!("no sound is called {:?}", sound.trim());
            if let Some(similar) = listed(&body["similar"]) {
                message.push_str(&format!("; did you mean: {similar}"));
            }
            return Err(exit(NO_SUCH_SOUND, message));
        }
        409 => {
            let matches = listed(&body["matches"]).unwrap_or_default();
            return Err(exit(
                AMBIGUOUS,
                format!(
                    "several sounds are called {:?}: {matches}; trigger one by its id",
                    sound.trim()
                ),
            ));
        }
        _ => return Err(app.failure(status, &body)),
    }
    Ok(())
}

/// `voxboard stop-all`
pub fn stop_all() -> anyhow::Result<()> {
    let app = App::find()?;
    match app.post("/v1/stop-all", None)? {
        (200, _) => {
            println!("stopped every sound");
            Ok(())
        }
        (status, body) => Err(app.failure(status, &body)),
    }
}

/// `voxboard ptt down|up`
pub fn push_to_talk(down: bool) -> anyhow::Result<()> {
    let app = App::find()?;
    match app.post("/v1/ptt", Some(json!({"down": down})))? {
        (200, _) => {
            println!("push-to-talk {}", if down { "held" } else { "released" });
            Ok(())
        }
        (status, body) => Err(app.failure(status, &body)),
    }
}

/// "Airhorn (id 3, tab Demo)"
fn describe(sound: &Value) -> String {
    format!(
        "{} (id {}, tab {})",
        sound["name"].as_str().unwrap_or("?"),
        sound["id"],
        sound["tab"].as_str().unwrap_or("?")
    )
}

/// The sounds of a list, described, or `None` for an empty or missing list.
fn listed(list: &Value) -> Option<String> {
    let items: Vec<String> = list.as_array()?.iter().map(describe).collect();
    (!items.is_empty()).then(|| items.join(", "))
}

/// An app a runtime file describes.
struct Found {
    info: RuntimeInfo,
    file: PathBuf,
}

/// The running app: the real app's runtime file first, then the demo's.
struct App {
    found: Vec<Found>,
    /// The one that answered (or is tried next).
    chosen: Cell<usize>,
    agent: ureq::Agent,
}

impl App {
    fn find() -> anyhow::Result<App> {
        let Some(dir) = runtime_file::dir() else {
            return Err(exit(
                NOT_RUNNING,
                "Voxboard is not running (this system has no runtime or cache directory to find \
                 it by; set VOXBOARD_RUNTIME_DIR)",
            ));
        };
        let mut found = Vec::new();
        for instance in [Instance::App, Instance::Demo] {
            match runtime_file::read(&dir, instance) {
                Ok(info) => found.push(Found {
                    info,
                    file: runtime_file::path_in(&dir, instance),
                }),
                Err(ReadError::Missing(_)) => {}
                Err(e) => return Err(anyhow::anyhow!("cannot find the running app: {e}")),
            }
        }
        if found.is_empty() {
            return Err(exit(
                NOT_RUNNING,
                format!(
                    "Voxboard is not running ({} does not exist, nor {}; start the app or \
                     `voxboard --demo`)",
                    runtime_file::path_in(&dir, Instance::App).display(),
                    runtime_file::DEMO_FILE_NAME,
                ),
            ));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            // Error statuses are answers here, with JSON bodies worth reading.
            .http_status_as_error(false)
            // The key must never go to a proxy from HTTP_PROXY: the app is on this machine.
            .proxy(None)
            .max_redirects(0)
            .build();
        Ok(App {
            found,
            chosen: Cell::new(0),
            agent: config.into(),
        })
    }

    fn chosen(&self) -> &Found {
        &self.found[self.chosen.get()]
    }

    /// POSTs to the API; returns the status and the JSON body (`null` if there is none). When
    /// nothing answers where a runtime file says (one left by a crash), the next file is tried.
    fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        loop {
            match self.post_to(self.chosen(), path, body.clone()) {
                Err(e)
                    if e.downcast_ref::<Exit>()
                        .is_some_and(|x| x.code == NOT_RUNNING)
                        && self.chosen.get() + 1 < self.found.len() =>
                {
                    self.chosen.set(self.chosen.get() + 1);
                }
                other => return other,
            }
        }
    }

    fn post_to(
        &self,
        app: &Found,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", app.info.url);
        let request = self
            .agent
            .post(&url)
            .header("Authorization", format!("Bearer {}", app.info.key));
        let sent = match body {
            Some(b) => request
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            None => request.send_empty(),
        };
        let mut response = match sent {
            Ok(r) => r,
            Err(ureq::Error::Io(e)) if is_nobody_there(e.kind()) => {
                return Err(exit(
                    NOT_RUNNING,
                    format!(
                        "Voxboard is not running (nothing answers at {}; {} is left from an \
                         earlier run)",
                        app.info.url,
                        app.file.display()
                    ),
                ));
            }
            Err(ureq::Error::ConnectionFailed) => {
                return Err(exit(
                    NOT_RUNNING,
                    format!(
                        "Voxboard is not running (nothing answers at {})",
                        app.info.url
                    ),
                ));
            }
            Err(e) => return Err(anyhow::anyhow!("calling Voxboard at {url}: {e}")),
        };
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// An answer no command expects, in words.
    fn failure(&self, status: u16, body: &Value) -> anyhow::Error {
        let message = body["message"].as_str().unwrap_or("no explanation");
        match status {
            401 => anyhow::anyhow!(
                "Voxboard refused the key in {} ({message})",
                self.chosen().file.display()
            ),
            _ => anyhow::anyhow!("Voxboard answered {status}: {message}"),
        }
    }
}

fn is_nobody_there(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
    )
}
