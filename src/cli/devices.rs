//! Sound devices for the CLI: `voxboard devices`, and the microphone/monitor of `play`.

use voxboard_audio::capture::Microphone;
use voxboard_audio::devices::list_devices;
use voxboard_audio::monitor::Monitor;
use voxboard_voice::engine::mix::Exclusive;
use voxboard_voice::engine::{Command, Voice};

/// `voxboard devices`: every input and output, defaults marked.
pub fn run() -> anyhow::Result<()> {
    let list = list_devices();
    if list.inputs.is_empty() && list.outputs.is_empty() {
        println!(
            "no audio devices (no sound server or hardware): Voxboard works without mic and monitor"
        );
        return Ok(());
    }
    for (title, devices, default) in [
        ("inputs", &list.inputs, &list.default_input),
        ("outputs", &list.outputs, &list.default_output),
    ] {
        println!("{title}:");
        for d in devices {
            let mark = if Some(&d.id) == default.as_ref() {
                "*"
            } else {
                " "
            };
            let config = d.default_config.as_deref().unwrap_or("unavailable");
            println!(" {mark} {}  {}  ({config})", d.id, d.name);
        }
    }
    Ok(())
}

/// Which devices `play` should open (`Some(None)` = the default device).
pub struct DeviceChoice {
    pub mic: Option<Option<String>>,
    pub monitor: Option<Option<String>>,
}

/// The open streams; they stop when this is dropped.
pub struct Attached {
    _mic: Option<Microphone>,
    _monitor: Option<Monitor>,
}

/// Opens the chosen devices and hands their ring-buffer ends to the engine. A missing device is
/// a normal state: it is said once and the run goes on without it.
pub fn attach(voice: &Voice, choice: &DeviceChoice) -> Attached {
    let mic = choice
        .mic
        .as_ref()
        .and_then(|id| match Microphone::open(id.as_deref()) {
            Ok(mut mic) => {
                println!(
                    "microphone: {} ({})",
                    mic.device_name(),
                    mic.device_config()
                );
                let reader = mic.take_reader()?;
                voice.command(Command::SetMic(Some(Exclusive::new(Box::new(reader)))));
                voice.command(Command::PushToTalk(true));
                Some(mic)
            }
            Err(e) => {
                println!("no microphone: {e}; continuing without it");
                None
            }
        });
    let monitor = choice
        .monitor
        .as_ref()
        .and_then(|id| match Monitor::open(id.as_deref()) {
            Ok(mut monitor) => {
                println!(
                    "monitor: {} ({})",
                    monitor.device_name(),
                    monitor.device_config()
                );
                let writer = monitor.take_writer()?;
                voice.command(Command::SetMonitorSink(Some(Exclusive::new(Box::new(
                    writer,
                )))));
                Some(monitor)
            }
            Err(e) => {
                println!("no monitor output: {e}; continuing without it");
                None
            }
        });
    Attached {
        _mic: mic,
        _monitor: monitor,
    }
}
