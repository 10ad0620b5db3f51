//! The engine thread: a deadline clock that runs one tick every 20 ms without drift.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::watch;
use url::Url;

use super::status::{Status, StatusOut};
use super::{Command, EngineCore, EngineMsg, Net, NetEvent, Settings, TICK, TokioNetwork};
use crate::discord::gateway::{self, GatewayConfig};
use crate::discord::ws::{TlsTrust, Token};

/// A running engine: its inbox, its status and its thread.
pub struct EngineThread {
    pub tx: Sender<EngineMsg>,
    pub status: watch::Receiver<Status>,
    pub thread: Option<JoinHandle<()>>,
}

/// Starts the I/O runtime, the main gateway task and the engine thread.
pub fn spawn_engine(
    settings: Settings,
    gateway_url: Url,
    rest_url: Url,
    token: Token,
    tls: TlsTrust,
) -> std::io::Result<EngineThread> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("voxboard-io")
        .enable_all()
        .build()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let to_engine = tx.clone();
    let rest = crate::discord::rest::RestClient::new(rest_url, token.clone(), tls.clone());
    let gateway = {
        let _enter = runtime.enter();
        gateway::spawn(
            GatewayConfig {
                url: gateway_url.clone(),
                token,
                tls: tls.clone(),
                rest: crate::discord::rest::serves_gateway(rest.base(), &gateway_url)
                    .then(|| rest.clone()),
            },
            Arc::new(move |event| {
                let _ = to_engine.send(EngineMsg::Net(NetEvent::Gateway(event)));
            }),
        )
    };
    let net = Net {
        network: Arc::new(TokioNetwork {
            runtime: runtime.handle().clone(),
            tls,
            to_engine: tx.clone(),
            gateway,
            rest,
        }),
        gateway_url,
    };
    let core = EngineCore::new(settings, Some(net), Instant::now());
    let status = core.world.resource::<StatusOut>().subscribe();
    let thread = std::thread::Builder::new()
        .name("voxboard-engine".into())
        .spawn(move || {
            run_clock(core, rx);
            // Give the tasks a moment to send their close frames.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
        })?;
    Ok(EngineThread {
        tx,
        status,
        thread: Some(thread),
    })
}

/// Waits for inputs until each deadline, then ticks. Deadlines are `start + n × 20 ms`: a late
/// tick does not push the next one back. After a long stall (a suspended laptop) it skips ahead
/// instead of bursting the missed frames.
///
/// When nothing is playing, a play command does not wait for the next boundary: the tick runs at
/// once and the clock restarts its phase from there (there is no stream to keep in step).
fn run_clock(mut core: EngineCore, rx: Receiver<EngineMsg>) {
    let mut start = Instant::now();
    let mut n: u32 = 1;
    let mut shutting_down = false;
    let mut idle = true;
    loop {
        let deadline = start + TICK * n;
        let mut tick_at = deadline;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(msg) => {
                    shutting_down |= matches!(msg, EngineMsg::Command(Command::Shutdown));
                    let starts_sound = matches!(msg, EngineMsg::Command(Command::Play(_)));
                    core.push(msg);
                    if starts_sound && idle {
                        tick_at = Instant::now();
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // A panic in a tick is a bug; it must not end the engine. The supervisor rebuilds the
        // world and rejoins; the status says what happened.
        let ticked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.tick(tick_at)));
        if let Err(panic) = ticked {
            let why = crate::discord::gateway::panic_text(&*panic);
            core = super::supervisor::restart(core, &why, Instant::now());
        }
        if shutting_down {
            return;
        }
        idle = !core.is_busy();
        if tick_at < deadline {
            // Rephase: the next tick is 20 ms after this early one.
            start = tick_at;
            n = 1;
            continue;
        }
        n += 1;
        let behind = Instant::now().saturating_duration_since(start + TICK * n);
        if behind > TICK * 5 {
            tracing::warn!("engine: {behind:?} behind the clock, skipping ahead");
            n += (behind.as_micros() / TICK.as_micros()) as u32;
        }
    }
}
