//! Recovery times from the field's faults, fault → audio back at the simulator's listener.
//!
//! `cargo bench -p voxboard-voice --bench recovery` (RECOVERY_RUNS, default 20, runs per fault).
//! For each run a tone is playing; the fault is injected, and the time is measured until the
//! listener hears audio again after the interruption (0 when the audio never stopped: a voice
//! resume keeps UDP flowing). Prints p50 and max per fault. Wall-clock figures of a real engine
//! and simulator on loopback, so they move with the machine's load: say which machine.
//!
//! Each run has its own simulator and engine. On one connection, a fault every two seconds is
//! a flapping server, and the engine rightly waits longer before each rejoin
//! (`VoiceLink::backoff_step`); that would measure the backoff, not the recovery.

use std::time::{Duration, Instant};

use voxboard_sim::{SimConfig, Simulator};
use voxboard_voice::discord::ws::Token;
use voxboard_voice::engine::{Target, Voice, VoiceConfig};

const GUILD: u64 = 100;
/// A gap this long between two heard frames is an interruption (frames come every 20 ms).
const GAP: Duration = Duration::from_millis(60);

fn tone(seconds: f32) -> std::sync::Arc<[f32]> {
    let n = (seconds * 48_000.0) as usize;
    (0..n)
        .flat_map(|i| {
            let s = 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin();
            [s, s]
        })
        .collect()
}

/// Time from `fault_at` until audio is heard again after the interruption it caused; `None`
/// if it never came back within the frames heard.
fn audio_back(sim: &Simulator, fault_at: Instant) -> Option<Duration> {
    let frames = sim.heard(GUILD).frames;
    let after: Vec<Instant> = frames.iter().filter(|f| !f.silence).map(|f| f.at).collect();
    let mut last = after.iter().rev().find(|&&t| t <= fault_at).copied()?;
    for &t in after.iter().filter(|&&t| t > fault_at) {
        if t.duration_since(last) > GAP {
            return Some(t.duration_since(fault_at));
        }
        last = t;
    }
    // No gap after the fault: fine if audio kept coming well past it.
    (last.saturating_duration_since(fault_at) > Duration::from_millis(500))
        .then_some(Duration::ZERO)
}

/// A fresh simulator and an engine joined to its voice channel.
fn joined() -> (Simulator, Voice) {
    let sim = Simulator::start(SimConfig::with_guilds(1)).expect("simulator");
    let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    config.gateway_url = sim.gateway_url();
    config.rest_url = sim.rest_url();
    let voice = Voice::connect(config).expect("connect");
    voice.join_channel(GUILD, 1002, false, true).expect("join");
    (sim, voice)
}

fn measure(name: &str, runs: usize, fault: impl Fn(&Simulator)) {
    let mut times = Vec::new();
    let mut lost = 0;
    for _ in 0..runs {
        let (sim, voice) = joined();
        let playing = voice.play(tone(12.0), Target::All, 1.0);
        std::thread::sleep(Duration::from_millis(600));
        let fault_at = Instant::now();
        fault(&sim);
        let deadline = fault_at + Duration::from_secs(11);
        let back = loop {
            std::thread::sleep(Duration::from_millis(50));
            let back = audio_back(&sim, fault_at);
            let settled = back.is_some_and(|b| b > Duration::ZERO)
                || fault_at.elapsed() > Duration::from_millis(800);
            if (back.is_some() && settled) || Instant::now() > deadline {
                break back;
            }
        };
        voice.stop_all();
        drop(playing);
        match back {
            Some(t) => times.push(t.as_secs_f64() * 1000.0),
            None => lost += 1,
        }
        voice.close();
        let violations = sim.violations();
        if !violations.is_empty() {
            println!("{name}: protocol violations: {violations:#?}");
        }
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    if times.is_empty() {
        println!("{name}: audio never came back in {runs} runs");
    } else {
        println!(
            "{name}: fault -> audio back over {} runs: p50 {:.0} ms, max {:.0} ms{}",
            times.len(),
            pick(0.5),
            times[times.len() - 1],
            if lost > 0 {
                format!(" ({lost} runs never came back within 11 s)")
            } else {
                String::new()
            }
        );
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` builds benches and runs them without --bench: nothing to time
    }
    let runs: usize = std::env::var("RECOVERY_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    measure("close 4006 (session gone: rejoin)", runs, |sim| {
        sim.close_voice(GUILD, 4006)
    });
    measure("close 1001 (server going away: rejoin)", runs, |sim| {
        sim.close_voice(GUILD, 1001)
    });
    measure("close 4015 (server crashed: resume)", runs, |sim| {
        sim.close_voice(GUILD, 4015)
    });
    measure("silent voice server on the rejoin", runs, |sim| {
        sim.silence_voice_server(GUILD, 1);
        sim.close_voice(GUILD, 4006);
    });
}
