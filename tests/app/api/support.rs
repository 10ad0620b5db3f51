//! An app with its control API on a free port, and the HTTP calls and CLI runs that talk to it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use serde_json::Value;
use voxboard::api::runtime_file;
use voxboard::api::{ApiOptions, RateLimit};
use voxboard::ui::VoxApp;
use voxboard_voice::engine::Phase;

use crate::ui_support::{Env, harness, step_until};

/// Fields drop in order: the app (which stops its API and engine) before the simulator.
pub struct ApiApp {
    pub h: Harness<'static, VoxApp>,
    pub env: Env,
    pub runtime: tempfile::TempDir,
    pub url: String,
    pub key: String,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: Value,
    pub retry_after: Option<String>,
    pub www_authenticate: Option<String>,
}

impl ApiApp {
    /// The app of `env` with its API on a free port, its runtime file in a temp dir.
    pub fn start(env: Env, rate: RateLimit) -> ApiApp {
        Self::start_with(env, rate, voxboard::api::PTT_HOLD)
    }

    /// … with push-to-talk holds over the API lasting `ptt_hold`.
    pub fn start_with(env: Env, rate: RateLimit, ptt_hold: Duration) -> ApiApp {
        let runtime = tempfile::tempdir().expect("runtime dir");
        let mut config = env.config();
        config.api = Some(ApiOptions {
            port: Some(0),
            runtime_dir: Some(runtime.path().to_owned()),
            instance: runtime_file::Instance::App,
            rate,
            ptt_hold,
        });
        let h = harness(VoxApp::new(config));
        let info = runtime_file::read(runtime.path(), runtime_file::Instance::App)
            .expect("the app wrote its runtime file");
        assert_eq!(Some(info.url.as_str()), h.state().api_url());
        assert!(info.url.starts_with("http://127.0.0.1:"), "{}", info.url);
        assert_eq!(info.key, h.state().core.board.settings.api.key.expose());
        ApiApp {
            h,
            env,
            runtime,
            url: info.url,
            key: info.key,
        }
    }

    /// Waits until the guild's connection is ready.
    pub fn wait_ready(&mut self, guild: u64) {
        step_until(&mut self.h, Duration::from_secs(15), "guild ready", |h| {
            h.state()
                .core
                .status
                .connections
                .iter()
                .any(|c| c.guild_id == guild && c.phase == Phase::Ready)
        });
    }

    /// Waits until the simulator's listeners in `guild` heard at least `frames` audio frames.
    pub fn wait_heard(&mut self, guild: u64, frames: usize) {
        let sim = self.env.sim.as_ref().expect("a simulator");
        step_until(
            &mut self.h,
            Duration::from_secs(10),
            "the listener hears it",
            |_| sim.heard(guild).audio_frames() >= frames,
        );
    }

    /// A call with the right key.
    pub fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = Some(format!("Bearer {}", self.key));
        self.call_raw(method, path, auth, body.map(|b| b.to_string().into_bytes()))
    }

    /// A call with any Authorization header (or none) and any body.
    pub fn call_raw(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<String>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let (url, method) = (format!("{}{path}", self.url), method.to_owned());
        self.stepping(&format!("{method} {path}"), move || {
            send(&method, &url, auth, body)
        })
    }

    /// Runs `work` on another thread, stepping the app until it is done.
    pub fn stepping<T: Send + 'static>(
        &mut self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        self.stepping_for(what, Duration::from_secs(30), work)
    }

    /// [`Self::stepping`] with a longer guard, for work that runs many requests (a fuzzer).
    pub fn stepping_for<T: Send + 'static>(
        &mut self,
        what: &str,
        limit: Duration,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let worker = std::thread::spawn(work);
        let end = Instant::now() + limit;
        while !worker.is_finished() {
            self.h.step();
            assert!(Instant::now() < end, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
        worker.join().unwrap_or_else(|_| panic!("{what} panicked"))
    }

    /// The real binary with `args`, finding this app through its runtime file.
    pub fn voxboard(&mut self, args: &[&str]) -> Output {
        let dir = self.runtime.path().to_owned();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.stepping(&format!("voxboard {args:?}"), move || cli(&dir, &args))
    }
}

/// One HTTP request with ureq (error statuses are answers, never errors).
pub fn send(method: &str, url: &str, auth: Option<String>, body: Option<Vec<u8>>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let response = match method {
        "GET" => {
            let mut r = agent.get(url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        "POST" | "PUT" => {
            let mut r = if method == "POST" {
                agent.post(url)
            } else {
                agent.put(url)
            };
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            match body {
                Some(b) => r.header("Content-Type", "application/json").send(b),
                None => r.send_empty(),
            }
        }
        other => panic!("no helper for {other}"),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (retry_after, www_authenticate) = (header("retry-after"), header("www-authenticate"));
    let text = response.body_mut().read_to_string().expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    Reply {
        status: response.status().as_u16(),
        json,
        retry_after,
        www_authenticate,
    }
}

/// `voxboard ARGS` with its runtime dir set, every log level on, and an HTTP proxy in the
/// environment that does not exist (the CLI must not send the key through a proxy).
pub fn cli(runtime_dir: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args(args)
        .env(runtime_file::ENV_RUNTIME_DIR, runtime_dir)
        .env("RUST_LOG", "trace")
        .env("http_proxy", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("run voxboard")
}

/// stdout and stderr together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The ids of the sounds in a JSON list.
pub fn ids(list: &Value) -> Vec<u64> {
    list.as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// A `/events` WebSocket client on a thread of its own: every message, parsed, in `rx`.
pub struct EventClient {
    pub rx: std::sync::mpsc::Receiver<Value>,
}

impl EventClient {
    /// Connects with this Authorization header (or none); `Err(status)` when refused.
    pub fn connect(app: &mut ApiApp, auth: Option<String>, path: &str) -> Result<Self, u16> {
        Self::open(app, path, auth.map(|a| ("authorization", a)))
    }

    /// Connects as a browser page of `origin` would (key in the path's query).
    pub fn connect_with_origin(app: &mut ApiApp, path: &str, origin: &str) -> Result<Self, u16> {
        Self::open(app, path, Some(("origin", origin.to_owned())))
    }

    fn open(
        app: &mut ApiApp,
        path: &str,
        header: Option<(&'static str, String)>,
    ) -> Result<Self, u16> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::{Error, Message};

        let url = format!("{}{path}", app.url.replacen("http://", "ws://", 1));
        let (opened, result) = std::sync::mpsc::channel::<Result<(), u16>>();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut request = url.into_client_request().expect("request");
                if let Some((name, value)) = header {
                    request
                        .headers_mut()
                        .insert(name, value.parse().expect("header value"));
                }
                let mut ws = match tokio_tungstenite::connect_async(request).await {
                    Ok((ws, _)) => ws,
                    Err(Error::Http(r)) => {
                        let _ = opened.send(Err(r.status().as_u16()));
                        return;
                    }
                    Err(e) => panic!("connecting to /events: {e}"),
                };
                let _ = opened.send(Ok(()));
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message {
                        let event: Value = serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                }
            });
        });
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = result.try_recv() {
                return r.map(|()| EventClient { rx });
            }
            assert!(Instant::now() < end, "timed out connecting to {path}");
            app.h.step();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
