//! Shared helpers for the integration tests: a simulator, a connected engine, test signals.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use voxboard_audio::decode::{Clip, decode_file};
use voxboard_sim::{SimConfig, Simulator};
pub use voxboard_testkit::*;
use voxboard_voice::discord::ws::Token;
use voxboard_voice::engine::{Voice, VoiceConfig};

pub fn three_tone_clip() -> Clip {
    let f = fixture();
    decode_file(&f.tones, &mut |_| {}).expect("decode three tones")
}

pub fn connect(sim: &Simulator) -> Voice {
    let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    config.gateway_url = sim.gateway_url();
    config.rest_url = sim.rest_url();
    Voice::connect(config).expect("connect to the simulator")
}

/// Waits until the silence tail went out on every connection.
pub fn wait_quiet(voice: &Voice) {
    let status = voice.status();
    let deadline = Instant::now() + Duration::from_secs(3);
    std::thread::sleep(Duration::from_millis(200));
    while Instant::now() < deadline && status.borrow().connections.iter().any(|c| c.speaking) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// Waits (up to `timeout`) until the status snapshot satisfies `pred`; the snapshot follows the
/// engine by up to one tick.
pub fn wait_status(
    voice: &Voice,
    timeout: Duration,
    pred: impl Fn(&voxboard_voice::engine::Status) -> bool,
) -> voxboard_voice::engine::Status {
    let status = voice.status();
    let deadline = Instant::now() + timeout;
    loop {
        let now = status.borrow().clone();
        if pred(&now) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
