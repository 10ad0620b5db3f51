//! The app's microphone and monitor: opened, watched and reopened on a thread of their own, so
//! the UI never waits on a sound server. The thread owns the cpal streams and hands their
//! ring-buffer ends to the engine.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use voxboard_audio::capture::{MicStatus, Microphone};
use voxboard_audio::devices::{AudioDeviceError, DeviceList, list_devices};
use voxboard_audio::monitor::Monitor;
use voxboard_voice::engine::mix::Exclusive;
use voxboard_voice::engine::{Command, EngineMsg};

/// What the settings panel and the bottom bar show.
#[derive(Debug, Clone, Default)]
pub struct DeviceState {
    /// `None` until the first listing finished.
    pub list: Option<DeviceList>,
    /// "Default Audio Device (2 ch, 48000 Hz, f32)", or why there is no microphone.
    pub mic: String,
    pub mic_ok: bool,
    pub monitor: String,
}

enum Request {
    Attach {
        engine: Sender<EngineMsg>,
        input: Option<String>,
        output: Option<String>,
        monitor: bool,
    },
    Relist,
}

/// A handle to the device thread; dropping it stops the thread and closes the streams.
pub struct AudioDevices {
    tx: Sender<Request>,
    pub state: Arc<Mutex<DeviceState>>,
}

/// Applies a change to the shared state and asks for a repaint.
type Update<'a> = &'a dyn Fn(&dyn Fn(&mut DeviceState));

/// How often the thread checks the running microphone and monitor, and retries a lost one.
const WATCH_EVERY: Duration = Duration::from_secs(1);

impl AudioDevices {
    /// Starts the device thread; `repaint` is called whenever the state changes.
    pub fn spawn(repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = channel();
        let state = Arc::new(Mutex::new(DeviceState {
            mic: "looking for a microphone…".into(),
            ..Default::default()
        }));
        let shared = state.clone();
        let _ = std::thread::Builder::new()
            .name("voxboard-audio-devices".into())
            .spawn(move || run(rx, shared, repaint));
        AudioDevices { tx, state }
    }

    /// (Re)opens the chosen devices (None = default) and gives them to `engine`.
    pub fn attach(
        &self,
        engine: Sender<EngineMsg>,
        input: Option<String>,
        output: Option<String>,
        monitor: bool,
    ) {
        let _ = self.tx.send(Request::Attach {
            engine,
            input,
            output,
            monitor,
        });
    }

    pub fn relist(&self) {
        let _ = self.tx.send(Request::Relist);
    }

    pub fn snapshot(&self) -> DeviceState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn run(
    rx: Receiver<Request>,
    state: Arc<Mutex<DeviceState>>,
    repaint: Arc<dyn Fn() + Send + Sync>,
) {
    let update = |f: &dyn Fn(&mut DeviceState)| {
        if let Ok(mut s) = state.lock() {
            f(&mut s);
        }
        repaint();
    };
    let list = list_devices();
    update(&|s| s.list = Some(list.clone()));
    let mut mic: Option<Microphone> = None;
    // Why the running microphone was lost; while set, it is reopened every WATCH_EVERY (a
    // restarting sound server first refuses connections, which reads as "no device").
    let mut mic_lost: Option<String> = None;
    let mut monitor: Option<Monitor> = None;
    // Where the monitor plays while it is on: the engine and the chosen output.
    let mut monitor_target: Option<(Sender<EngineMsg>, Option<String>)> = None;
    // Why the running monitor was lost; while set, it is reopened every WATCH_EVERY.
    let mut monitor_lost: Option<String> = None;
    loop {
        match rx.recv_timeout(WATCH_EVERY) {
            Ok(Request::Relist) => {
                let list = list_devices();
                update(&|s| s.list = Some(list.clone()));
            }
            Ok(Request::Attach {
                engine,
                input,
                output,
                monitor: monitor_on,
            }) => {
                mic = open_mic(input.as_deref(), &engine, &update);
                mic_lost = None;
                monitor_lost = None;
                monitor_target = None;
                if monitor_on {
                    monitor = match open_monitor(output.as_deref(), &engine, &update) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            let text = format!("no monitor output: {e}");
                            update(&|s| s.monitor = text.clone());
                            None
                        }
                    };
                    monitor_target = Some((engine, output));
                } else {
                    monitor = None;
                    let _ = engine.send(EngineMsg::Command(Command::SetMonitorSink(None)));
                    update(&|s| s.monitor = "off".into());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // A lost microphone (unplugged, sound server restarted) is retried until it
                // runs again; its reader in the engine switches to the new stream by itself.
                if let Some(m) = mic.as_mut() {
                    if mic_lost.is_none()
                        && let MicStatus::Lost { reason } = m.check()
                    {
                        tracing::warn!("microphone lost: {reason}");
                        mic_lost = Some(reason);
                    }
                    if let Some(reason) = &mic_lost {
                        let now = match m.reopen() {
                            Ok(()) => {
                                mic_lost = None;
                                (format!("{} ({})", m.device_name(), m.device_config()), true)
                            }
                            Err(e) => (format!("microphone lost: {reason}; retrying ({e})"), false),
                        };
                        update(&|s| (s.mic, s.mic_ok) = now.clone());
                    }
                }
                // A lost monitor (headphones unplugged, sound server restarted) is replaced by a
                // new one; the engine drops the old ring when it gets the new one.
                if let Some(m) = monitor.as_mut()
                    && let MicStatus::Lost { reason } = m.check()
                {
                    tracing::warn!("monitor output lost: {reason}");
                    monitor = None;
                    monitor_lost = Some(reason);
                }
                if let (None, Some(reason), Some((engine, output))) =
                    (&monitor, &monitor_lost, &monitor_target)
                {
                    match open_monitor(output.as_deref(), engine, &update) {
                        Ok(m) => {
                            monitor = Some(m);
                            monitor_lost = None;
                        }
                        Err(e) => {
                            let text = format!("monitor lost: {reason}; retrying ({e})");
                            update(&|s| s.monitor = text.clone());
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn open_mic(
    id: Option<&str>,
    engine: &Sender<EngineMsg>,
    update: Update<'_>,
) -> Option<Microphone> {
    match Microphone::open(id) {
        Ok(mut mic) => {
            let reader = mic.take_reader()?;
            let _ = engine.send(EngineMsg::Command(Command::SetMic(Some(Exclusive::new(
                Box::new(reader),
            )))));
            let text = format!("{} ({})", mic.device_name(), mic.device_config());
            update(&|s| (s.mic, s.mic_ok) = (text.clone(), true));
            Some(mic)
        }
        Err(e) => {
            let _ = engine.send(EngineMsg::Command(Command::SetMic(None)));
            let text = format!("no microphone: {e}");
            update(&|s| (s.mic, s.mic_ok) = (text.clone(), false));
            None
        }
    }
}

/// Opens the monitor output and gives its ring to the engine.
fn open_monitor(
    id: Option<&str>,
    engine: &Sender<EngineMsg>,
    update: Update<'_>,
) -> Result<Monitor, AudioDeviceError> {
    let mut monitor = Monitor::open(id)?;
    if let Some(writer) = monitor.take_writer() {
        let _ = engine.send(EngineMsg::Command(Command::SetMonitorSink(Some(
            Exclusive::new(Box::new(writer)),
        ))));
    }
    let text = format!("{} ({})", monitor.device_name(), monitor.device_config());
    update(&|s| s.monitor = text.clone());
    Ok(monitor)
}
