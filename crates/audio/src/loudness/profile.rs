//! A clip's loudness kept per 100 ms, so that the loudness of any trim window is known at once
//! and without the samples: EBU R128 gates 400 ms blocks that overlap by 75 % (one every
//! 100 ms), so the integrated loudness of a window is the gated mean of the blocks inside it.

use ebur128::{EbuR128, Mode};

use super::Measurement;
use crate::shaping::Shape;
use crate::{CHANNELS, SAMPLE_RATE};

/// 100 ms in frames: the gating blocks' hop.
const HOP: usize = SAMPLE_RATE as usize / 10;
/// Hops in one 400 ms gating block.
const HOPS_PER_BLOCK: usize = 4;
/// True peaks are kept per 10 ms, so a window's peak is its own to within 10 ms of its edges.
const PEAK_STEP: usize = SAMPLE_RATE as usize / 100;
/// ebur128's 4× interpolator reads the last 12 input samples: the reading just after a step
/// begins still carries the previous step's end, and is counted as the previous step's.
const GUARD: usize = 16;
/// BS.1770-4's gates: blocks under −70 LUFS never count; then those 10 LU under the mean of
/// the rest are dropped too.
const ABSOLUTE_GATE_LUFS: f64 = -70.0;
const RELATIVE_GATE_LU: f64 = -10.0;

/// Per-100 ms energy and per-10 ms true peak of a clip (an hour: 1.6 MB).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    frames: usize,
    /// Mean square of each whole hop, K-weighted and summed over the channels.
    energies: Vec<f32>,
    /// True peak (linear, the louder channel) of each 10 ms step, the last one maybe partial.
    peaks: Vec<f32>,
    /// The whole clip, as the meter measured it in the same pass.
    whole: Measurement,
}

impl Profile {
    /// Measures 48 kHz stereo interleaved samples in one pass. `None` only if the meter cannot
    /// be made.
    pub fn measure(samples_48k_stereo: &[f32]) -> Option<Profile> {
        let mode = Mode::I | Mode::TRUE_PEAK;
        let mut meter = EbuR128::new(CHANNELS as u32, SAMPLE_RATE, mode).ok()?;
        // Whole frames only: a stray odd sample would make the meter reject the slice.
        let samples = &samples_48k_stereo[..samples_48k_stereo.len() / CHANNELS * CHANNELS];
        let mut energies = Vec::with_capacity(samples.len() / (HOP * CHANNELS));
        let mut peaks: Vec<f32> = Vec::with_capacity(samples.len().div_ceil(PEAK_STEP * CHANNELS));
        for (k, step) in samples.chunks(PEAK_STEP * CHANNELS).enumerate() {
            let (guard, rest) = step.split_at((GUARD * CHANNELS).min(step.len()));
            meter.add_frames_f32(guard).ok()?;
            let carried = louder(|c| meter.prev_true_peak(c)) as f32;
            match peaks.last_mut() {
                Some(previous) => {
                    *previous = previous.max(carried);
                    peaks.push(0.0);
                }
                None => peaks.push(carried),
            }
            if !rest.is_empty() {
                meter.add_frames_f32(rest).ok()?;
                let own = louder(|c| meter.prev_true_peak(c)) as f32;
                peaks[k] = peaks[k].max(own);
            }
            let done = (k + 1) * PEAK_STEP;
            if done.is_multiple_of(HOP) && step.len() == PEAK_STEP * CHANNELS {
                // The meter's last 100 ms are exactly this hop.
                energies.push(meter.loudness_window(100).map_or(0.0, lufs_to_energy) as f32);
            }
        }
        let whole = Measurement {
            lufs: meter.loudness_global().ok().filter(|l| l.is_finite()),
            true_peak: louder(|c| meter.true_peak(c)) as f32,
        };
        Some(Profile {
            frames: samples.len() / CHANNELS,
            energies,
            peaks,
            whole,
        })
    }

    /// Only the whole clip's figures (every window then reads as the whole clip).
    pub fn whole_only(whole: Measurement) -> Profile {
        Profile {
            whole,
            ..Default::default()
        }
    }

    /// The whole clip's loudness and true peak.
    pub fn whole(&self) -> Measurement {
        self.whole
    }

    /// Loudness and true peak of the window `shape` trims, from the 400 ms blocks wholly
    /// inside it (fades aside). A window too short for one block has no integrated loudness
    /// of its own: it gets the whole clip's, as an untrimmed clip would.
    pub fn window(&self, shape: &Shape) -> Measurement {
        let w = shape.window(self.frames * CHANNELS);
        let (start, end) = (w.start / CHANNELS, w.end / CHANNELS);
        if start == 0 && end == self.frames {
            return self.whole;
        }
        let first = start.div_ceil(HOP);
        let blocks_end = (end / HOP + 1).saturating_sub(HOPS_PER_BLOCK);
        let blocks: Vec<f64> = (first..blocks_end)
            .filter_map(|b| self.energies.get(b..b + HOPS_PER_BLOCK))
            .map(|e| e.iter().map(|&x| f64::from(x)).sum::<f64>() / HOPS_PER_BLOCK as f64)
            .collect();
        if blocks.is_empty() {
            return self.whole;
        }
        let peaks = self
            .peaks
            .get(start / PEAK_STEP..end.div_ceil(PEAK_STEP).min(self.peaks.len()))
            .unwrap_or(&[]);
        Measurement {
            lufs: gated_lufs(&blocks),
            true_peak: peaks.iter().copied().fold(0.0, f32::max),
        }
    }
}

/// The larger of a per-channel reading over both channels (0 if the meter refuses).
fn louder(read: impl Fn(u32) -> Result<f64, ebur128::Error>) -> f64 {
    (0..CHANNELS as u32)
        .filter_map(|c| read(c).ok())
        .fold(0.0, f64::max)
}

/// Integrated loudness of gating blocks' energies, per BS.1770-4 §2.8; `None` if every block
/// is under the absolute gate (silence).
fn gated_lufs(blocks: &[f64]) -> Option<f64> {
    let mean_above = |gate: f64| {
        let (sum, n) = blocks
            .iter()
            .filter(|&&e| e > gate)
            .fold((0.0, 0usize), |(s, n), e| (s + e, n + 1));
        (n > 0).then(|| sum / n as f64)
    };
    let absolute = lufs_to_energy(ABSOLUTE_GATE_LUFS);
    let relative = mean_above(absolute)? * 10f64.powf(RELATIVE_GATE_LU / 10.0);
    mean_above(relative.max(absolute)).map(energy_to_lufs)
}

/// BS.1770's loudness of a mean square, and back (its −0.691 dB offset cancels the
/// K-weighting's gain at 1 kHz). Silence (−∞ LUFS, or NaN) is zero energy.
fn lufs_to_energy(lufs: f64) -> f64 {
    if lufs.is_finite() {
        10f64.powf((lufs + 0.691) / 10.0)
    } else {
        0.0
    }
}

fn energy_to_lufs(energy: f64) -> f64 {
    10.0 * energy.log10() - 0.691
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loudness::{integrated_lufs, measure};

    /// `seconds` of a 1 kHz stereo sine of peak `amplitude`.
    fn sine(amplitude: f32, seconds: f64) -> Vec<f32> {
        let frames = (48_000.0 * seconds) as usize;
        (0..frames)
            .flat_map(|i| {
                let s = amplitude * (i as f32 * 1000.0 * std::f32::consts::TAU / 48_000.0).sin();
                [s, s]
            })
            .collect()
    }

    fn trim(start: f64, end: Option<f64>) -> Shape {
        Shape {
            start,
            end,
            ..Default::default()
        }
    }

    /// A loud 2 s intro, then 6 s 20 LU quieter: the window after the intro reads what the
    /// meter reads on those samples alone, and its true peak is the quiet part's.
    #[test]
    fn a_trimmed_window_reads_as_the_meter_on_its_samples() {
        let mut clip = sine(0.5, 2.0);
        clip.extend(sine(0.05, 6.0));
        let profile = Profile::measure(&clip).expect("meter");
        assert_eq!(
            Some(profile.whole()),
            measure(&clip),
            "one pass, same whole"
        );

        let quiet = profile.window(&trim(2.0, None));
        let direct = integrated_lufs(&clip[2 * 96_000..]).expect("measurable");
        let lufs = quiet.lufs.expect("measurable");
        assert!((lufs - direct).abs() < 0.1, "window {lufs}, meter {direct}");
        assert!((lufs - -26.0).abs() < 0.2, "{lufs}");
        assert!(
            (quiet.true_peak - 0.05).abs() < 0.005,
            "{}",
            quiet.true_peak
        );

        let whole = profile.whole().lufs.expect("measurable");
        assert!(
            whole > lufs + 10.0,
            "the intro dominates the whole: {whole}"
        );
        // Cut at odd places (not on the 100 ms grid), the window is still within 0.1 LU.
        let mid = profile
            .window(&trim(2.73, Some(7.41)))
            .lufs
            .expect("measurable");
        assert!((mid - direct).abs() < 0.1, "{mid} vs {direct}");
        // Only the intro.
        let intro = profile
            .window(&trim(0.0, Some(1.95)))
            .lufs
            .expect("measurable");
        assert!((intro - -6.0).abs() < 0.2, "{intro}");
    }

    #[test]
    fn short_silent_and_odd_windows() {
        let mut clip = sine(0.0, 1.0);
        clip.extend(sine(0.1, 2.0));
        let profile = Profile::measure(&clip).expect("meter");
        assert_eq!(profile.window(&trim(0.0, Some(0.9))).lufs, None, "silence");
        assert_eq!(
            profile.window(&trim(1.5, Some(1.7))),
            profile.whole(),
            "under one block: the whole clip's"
        );
        // A hand-edited board: end before start, past the end, NaN.
        for shape in [
            trim(2.5, Some(1.0)),
            trim(9.0, None),
            trim(f64::NAN, Some(f64::NAN)),
        ] {
            let _ = profile.window(&shape);
        }
        let empty = Profile::measure(&[]).expect("meter");
        assert_eq!(empty.window(&trim(0.5, Some(1.0))).lufs, None);
    }
}
