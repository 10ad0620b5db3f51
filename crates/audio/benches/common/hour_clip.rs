//! The clip the waveform and loudness benches measure: an hour of 48 kHz stereo (a 440 Hz tone
//! under a slow swell) under `cargo bench`, 10 s when `cargo test` runs the bench once.

/// An hour under `cargo bench`; 10 s when run once as a test.
pub fn seconds() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        3_600
    } else {
        10
    }
}

pub fn clip(seconds: usize) -> Vec<f32> {
    let frames = seconds * 48_000;
    let mut samples = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let t = i as f32 / 48_000.0;
        let swell = 0.5 + 0.4 * (t * 0.01).sin();
        let s = swell * (t * 440.0 * std::f32::consts::TAU).sin();
        samples.extend_from_slice(&[s, -s]);
    }
    samples
}
