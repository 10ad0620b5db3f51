//! Loudness of a clip (EBU R128 integrated loudness) and the gain that brings it to a target.
//!
//! Measured once per decode, off the engine thread, so that "normalise" can make a quiet
//! recording and a loud one sit at the same level in the mix.

mod profile;

use ebur128::{EbuR128, Mode};

pub use profile::Profile;

use super::{CHANNELS, SAMPLE_RATE};

/// Largest boost normalisation applies: +12 dB. Quieter clips stay quieter rather than
/// turning their noise floor into a roar.
pub const MAX_BOOST_DB: f64 = 12.0;

/// The ceiling a boost may lift a clip's true peak to: −1 dBTP (EBU R128 s1's streaming
/// recommendation), so the peaks between samples that Opus's decoder reconstructs stay under
/// full scale.
pub const TRUE_PEAK_CEILING_DB: f64 = -1.0;

/// What normalisation needs to know about a clip, measured in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measurement {
    /// Integrated loudness; `None` for silence or a clip under one 400 ms gating block.
    pub lufs: Option<f64>,
    /// True peak (linear, 1.0 = 0 dBTP) of the louder channel: the sample peak of the signal
    /// 4× oversampled (ebur128's polyphase interpolator), which catches the peaks between
    /// samples that a sample peak misses by up to ~3 dB.
    pub true_peak: f32,
}

impl Measurement {
    pub fn true_peak_db(&self) -> f64 {
        20.0 * f64::from(self.true_peak).max(1e-10).log10()
    }
}

/// Integrated loudness and true peak of 48 kHz stereo interleaved samples, per EBU R128
/// (K-weighted, gated) and ITU-R BS.1770-4 annex 2. `None` only if the meter cannot be made.
pub fn measure(samples_48k_stereo: &[f32]) -> Option<Measurement> {
    let mut meter = EbuR128::new(CHANNELS as u32, SAMPLE_RATE, Mode::I | Mode::TRUE_PEAK).ok()?;
    // Whole frames only: a stray odd sample would make the meter reject the slice.
    let whole = samples_48k_stereo.len() - samples_48k_stereo.len() % CHANNELS;
    meter.add_frames_f32(&samples_48k_stereo[..whole]).ok()?;
    let true_peak = (0..CHANNELS as u32)
        .filter_map(|c| meter.true_peak(c).ok())
        .fold(0.0f64, f64::max);
    Some(Measurement {
        lufs: meter.loudness_global().ok().filter(|l| l.is_finite()),
        true_peak: true_peak as f32,
    })
}

/// [`measure`] for audio arriving a chunk at a time (a clip streamed from disk is never whole
/// in memory). The meter's state is small and does not grow with the clip.
pub struct Meter {
    meter: Option<EbuR128>,
    /// Sample peak, in case the meter cannot be made.
    peak: f32,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            meter: EbuR128::new(CHANNELS as u32, SAMPLE_RATE, Mode::I | Mode::TRUE_PEAK).ok(),
            peak: 0.0,
        }
    }
}

impl Meter {
    /// Adds 48 kHz stereo interleaved samples (whole frames).
    pub fn push(&mut self, samples: &[f32]) {
        let whole = &samples[..samples.len() - samples.len() % CHANNELS];
        self.peak = self.peak.max(crate::analysis::peak(whole));
        if let Some(m) = self.meter.as_mut()
            && m.add_frames_f32(whole).is_err()
        {
            self.meter = None;
        }
    }

    /// What [`measure`] gives for everything pushed; the sample peak and no loudness if the
    /// meter could not run.
    pub fn finish(self) -> Measurement {
        let Some(meter) = self.meter else {
            return Measurement {
                lufs: None,
                true_peak: self.peak,
            };
        };
        let true_peak = (0..CHANNELS as u32)
            .filter_map(|c| meter.true_peak(c).ok())
            .fold(0.0f64, f64::max);
        Measurement {
            lufs: meter.loudness_global().ok().filter(|l| l.is_finite()),
            true_peak: true_peak as f32,
        }
    }
}

/// Integrated loudness in LUFS of 48 kHz stereo interleaved samples, per EBU R128 (K-weighted,
/// gated). `None` when there is nothing to measure: silence, or a clip shorter than one
/// 400 ms gating block.
pub fn integrated_lufs(samples_48k_stereo: &[f32]) -> Option<f64> {
    let mut meter = EbuR128::new(CHANNELS as u32, SAMPLE_RATE, Mode::I).ok()?;
    let whole = samples_48k_stereo.len() - samples_48k_stereo.len() % CHANNELS;
    meter.add_frames_f32(&samples_48k_stereo[..whole]).ok()?;
    meter.loudness_global().ok().filter(|l| l.is_finite())
}

/// Linear gain that moves a clip measured at `lufs`, whose true peak is `true_peak` (linear,
/// 1.0 = 0 dBTP), to `target_lufs`. Boosts are capped at [`MAX_BOOST_DB`] and so that the true
/// peak stays at or below [`TRUE_PEAK_CEILING_DB`]; cuts are never capped. `None` for a
/// silent clip.
pub fn gain_to_target(lufs: f64, true_peak: f32, target_lufs: f64) -> Option<f32> {
    // `true_peak <= 0.0` alone would let NaN through.
    if !lufs.is_finite() || !target_lufs.is_finite() || true_peak.is_nan() || true_peak <= 0.0 {
        return None;
    }
    let wanted_db = target_lufs - lufs;
    if wanted_db <= 0.0 {
        return Some(db_to_linear(wanted_db) as f32);
    }
    let headroom_db = TRUE_PEAK_CEILING_DB - 20.0 * f64::from(true_peak).log10();
    let boost_db = wanted_db.min(MAX_BOOST_DB).min(headroom_db.max(0.0));
    Some(db_to_linear(boost_db) as f32)
}

fn db_to_linear(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of a 1 kHz sine of peak `amplitude`, on the left, the right or both channels.
    fn sine(amplitude: f32, seconds: f32, left: bool, right: bool) -> Vec<f32> {
        let frames = (48_000.0 * seconds) as usize;
        (0..frames)
            .flat_map(|i| {
                let s = amplitude * (i as f32 * 1000.0 * std::f32::consts::TAU / 48_000.0).sin();
                [if left { s } else { 0.0 }, if right { s } else { 0.0 }]
            })
            .collect()
    }

    // R128 with the K-weighting's +0.691 dB at 1 kHz cancelled by its -0.691 offset: a sine of
    // peak A in both channels reads 10·log10(2 · A²/2) = 20·log10(A) LUFS (EBU Tech 3341's
    // "1 kHz at -23 dBFS in both channels gives -23 LUFS"); in one channel only, 3 dB less.

    #[test]
    fn stereo_sine_at_minus_20_dbfs_reads_minus_20_lufs() {
        let lufs = integrated_lufs(&sine(0.1, 3.0, true, true)).expect("measurable");
        assert!((lufs - -20.0).abs() < 0.2, "{lufs}");
    }

    #[test]
    fn one_channel_sine_reads_3_db_lower() {
        let lufs = integrated_lufs(&sine(0.1, 3.0, true, false)).expect("measurable");
        assert!((lufs - -23.01).abs() < 0.2, "{lufs}");
    }

    #[test]
    fn silence_and_tiny_clips_have_no_loudness() {
        assert_eq!(integrated_lufs(&vec![0.0; 96_000]), None);
        assert_eq!(integrated_lufs(&[]), None);
        assert_eq!(integrated_lufs(&sine(0.5, 0.1, true, true)), None);
        // An odd sample count (never made by the decoder) is measured, not refused.
        let mut odd = sine(0.1, 1.0, true, true);
        odd.push(0.0);
        assert!(integrated_lufs(&odd).is_some());
    }

    /// A sine at a quarter of the sample rate, phased so that every sample lands at ±0.707 of
    /// its crest: the sample peak reads 3 dB low, the oversampled true peak finds the crest.
    #[test]
    fn true_peak_finds_the_crest_between_samples() {
        let s = 0.5 * std::f32::consts::FRAC_1_SQRT_2;
        let samples: Vec<f32> = [s, s, -s, -s]
            .iter()
            .cycle()
            .take(48_000)
            .flat_map(|&v| [v, v])
            .collect();
        let sample_peak = crate::analysis::peak(&samples);
        assert!((sample_peak - 0.3536).abs() < 1e-3, "{sample_peak}");
        let m = measure(&samples).expect("meter");
        assert!(
            (m.true_peak_db() - -6.02).abs() < 0.5,
            "true peak {} dBTP",
            m.true_peak_db()
        );
    }

    #[test]
    fn gain_reaches_target_within_caps() {
        // Cut: always the full amount.
        let g = gain_to_target(-10.0, 1.0, -20.0).expect("gain");
        assert!((g - 0.316_23).abs() < 1e-4, "{g}");
        // Boost of 6 dB with plenty of headroom.
        let g = gain_to_target(-26.0, 0.1, -20.0).expect("gain");
        assert!((g - 1.995_26).abs() < 1e-4, "{g}");
        // Boost limited by the true peak: 0.5 (−6.02 dBTP) can rise by 5.02 dB to −1 dBTP,
        // not 10 dB.
        let g = gain_to_target(-30.0, 0.5, -20.0).expect("gain");
        assert!((g - 2.0 * 0.891_25).abs() < 1e-3, "{g}");
        // Boost limited to +12 dB even with room to spare.
        let g = gain_to_target(-50.0, 0.001, -20.0).expect("gain");
        assert!((g - 3.981_07).abs() < 1e-4, "{g}");
        // A clip already at (or over) −1 dBTP cannot be boosted at all.
        assert_eq!(gain_to_target(-30.0, 1.0, -20.0), Some(1.0));
        assert_eq!(gain_to_target(-30.0, 0.9, -20.0), Some(1.0));
        assert_eq!(gain_to_target(-30.0, 0.0, -20.0), None);
        assert_eq!(gain_to_target(f64::NEG_INFINITY, 0.5, -20.0), None);
    }
}
