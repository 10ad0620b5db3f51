//! Signal measurements: level (rms, peak) and pitch (Goertzel, dominant frequency, tone
//! segments).
//!
//! Tests use these to check what a listener would hear ("a 440 Hz tone for 0.5 s, then
//! 660 Hz"); the level meter uses `rms`/`peak`. Nothing here allocates per sample, and the
//! frequency estimator is an FFT plus a short refinement so that it stays fast in debug builds.

use std::f64::consts::PI;

use realfft::RealFftPlanner;

/// Root mean square of `samples` (0 for an empty slice). Accumulates in f64 so that long
/// clips do not lose precision.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// Largest absolute sample value (0 for an empty slice).
pub fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0f32, |m, &s| m.max(s.abs()))
}

/// Largest absolute difference between neighbouring samples of one channel. A click or a
/// discontinuity shows up as a jump far above what a smooth signal of that pitch can make.
pub fn max_step(samples: &[f32]) -> f32 {
    samples
        .windows(2)
        .fold(0.0f32, |m, w| m.max((w[1] - w[0]).abs()))
}

/// Takes every `stride`-th sample starting at `offset`: one channel out of interleaved audio.
pub fn channel(interleaved: &[f32], channels: usize, offset: usize) -> Vec<f32> {
    if channels == 0 {
        return Vec::new();
    }
    interleaved
        .iter()
        .skip(offset)
        .step_by(channels)
        .copied()
        .collect()
}

/// Goertzel power of `samples` at `freq` Hz, scaled so that a sine of amplitude `A` at exactly
/// `freq` gives about `A²` (rectangular window: use whole periods or expect some leakage).
/// Any frequency is allowed, not only FFT bins.
pub fn goertzel_power(samples: &[f32], rate: u32, freq: f32) -> f32 {
    windowed_amplitude_sq(samples, rate, f64::from(freq), false) as f32
}

/// Amplitude² of the DTFT at `freq`, optionally Hann-windowed, normalised by the window sum
/// so that a sine of amplitude `A` reads as `A²`.
fn windowed_amplitude_sq(samples: &[f32], rate: u32, freq: f64, hann: bool) -> f64 {
    let n = samples.len();
    if n == 0 || rate == 0 {
        return 0.0;
    }
    let omega = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut wsum = 0.0f64;
    for (i, &x) in samples.iter().enumerate() {
        let w = if hann { hann_weight(i, n) } else { 1.0 };
        wsum += w;
        let s0 = w * f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if wsum <= 0.0 {
        return 0.0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    4.0 * power.max(0.0) / (wsum * wsum)
}

fn hann_weight(i: usize, n: usize) -> f64 {
    if n < 2 {
        return 1.0;
    }
    0.5 - 0.5 * (2.0 * PI * i as f64 / (n - 1) as f64).cos()
}

/// Frequency (Hz) of the strongest tone between `lo` and `hi` in a mono signal.
///
/// A Hann-windowed, zero-padded FFT finds the peak bin; a golden-section search on the
/// windowed DTFT then refines it to well under 1 Hz on a 1 s window of a clean tone. Returns
/// 0 for silence, an empty input or an empty range.
pub fn dominant_frequency(samples: &[f32], rate: u32, lo: f32, hi: f32) -> f32 {
    let n = samples.len();
    let nyquist = rate as f32 / 2.0;
    let (lo, hi) = (lo.max(0.0), hi.min(nyquist));
    if n < 4 || rate == 0 || hi <= lo || peak(samples) == 0.0 {
        return 0.0;
    }
    // Zero-pad to at least twice the length so the coarse peak lands within half a bin.
    let fft_len = (2 * n).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(fft_len);
    let mut input = fft.make_input_vec();
    for (i, (&x, slot)) in samples.iter().zip(input.iter_mut()).enumerate() {
        *slot = f64::from(x) * hann_weight(i, n);
    }
    let mut spectrum = fft.make_output_vec();
    if fft.process(&mut input, &mut spectrum).is_err() {
        return 0.0;
    }
    let bin_hz = f64::from(rate) / fft_len as f64;
    let first = ((f64::from(lo) / bin_hz).ceil() as usize).min(spectrum.len() - 1);
    let last = ((f64::from(hi) / bin_hz).floor() as usize).min(spectrum.len() - 1);
    if last < first {
        return 0.0;
    }
    let best = (first..=last)
        .max_by(|&a, &b| spectrum[a].norm_sqr().total_cmp(&spectrum[b].norm_sqr()))
        .unwrap_or(first);
    // Refine inside ± one padded bin (the Hann main lobe is much wider, so the true peak is
    // there) by maximising the windowed DTFT magnitude; it is unimodal in that interval.
    let (mut a, mut b) = (
        ((best as f64 - 1.0) * bin_hz).max(f64::from(lo)),
        ((best as f64 + 1.0) * bin_hz).min(f64::from(hi)),
    );
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    let f = |x: f64| windowed_amplitude_sq(samples, rate, x, true);
    let mut c = b - golden * (b - a);
    let mut d = a + golden * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 0.005 {
        if fc > fd {
            b = d;
            d = c;
            fd = fc;
            c = b - golden * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + golden * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0) as f32
}

/// Where each candidate tone is present in a mono signal.
///
/// The signal is cut into back-to-back windows of `window` seconds; in each window the
/// candidate with the largest Hann-windowed Goertzel amplitude wins if it carries a good share
/// of the window's energy (so silence and noise count as "no tone"). Consecutive windows with
/// the same winner merge into one `(freq, start_s, end_s)` segment, in time order. Edges are
/// exact to about one window; pick a window that holds a few periods of the lowest candidate
/// and whose Hann main lobe (±2/window Hz) separates neighbouring candidates.
pub fn tone_segments(
    samples: &[f32],
    rate: u32,
    candidates: &[f32],
    window: f32,
) -> Vec<(f32, f32, f32)> {
    let mut segments: Vec<(f32, f32, f32)> = Vec::new();
    if rate == 0 || candidates.is_empty() || window.is_nan() || window <= 0.0 {
        return segments;
    }
    let win_len = ((window * rate as f32).round() as usize).max(8);
    let secs = |i: usize| i as f32 / rate as f32;
    for (index, chunk) in samples.chunks(win_len).enumerate() {
        // A short tail window has poor frequency resolution; ignore it.
        if chunk.len() < win_len / 2 {
            break;
        }
        let start = index * win_len;
        let end = start + chunk.len();
        // A pure sine of amplitude A has rms² = A²/2 and reads A² here: ratio 1.
        let energy = 2.0 * f64::from(rms(chunk)).powi(2);
        let winner = candidates
            .iter()
            .map(|&f| (f, windowed_amplitude_sq(chunk, rate, f64::from(f), true)))
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .filter(|&(_, p)| energy > 1e-8 && p > 0.25 * energy);
        match (winner, segments.last_mut()) {
            (Some((f, _)), Some(last)) if last.0 == f && last.2 == secs(start) => {
                last.2 = secs(end);
            }
            (Some((f, _)), _) => segments.push((f, secs(start), secs(end))),
            (None, _) => {}
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, rate: u32, secs: f32) -> Vec<f32> {
        let n = (secs * rate as f32) as usize;
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn rms_and_peak_of_a_sine() {
        let s = sine(1000.0, 0.5, 48_000, 1.0);
        assert!(
            (rms(&s) - 0.5 / 2f32.sqrt()).abs() < 1e-3,
            "rms {}",
            rms(&s)
        );
        assert!((peak(&s) - 0.5).abs() < 1e-3, "peak {}", peak(&s));
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(peak(&[]), 0.0);
    }

    #[test]
    fn goertzel_reads_amplitude_squared_and_rejects_other_tones() {
        let s = sine(1000.0, 0.5, 48_000, 0.5);
        let on = goertzel_power(&s, 48_000, 1000.0);
        let off = goertzel_power(&s, 48_000, 1500.0);
        assert!((on - 0.25).abs() < 0.01, "on {on}");
        assert!(off < 1e-4, "off {off}");
    }

    #[test]
    fn dominant_frequency_is_precise_off_bin() {
        for &f in &[61.3f32, 440.0, 997.7, 1000.0, 7333.3] {
            let s = sine(f, 0.3, 48_000, 1.0);
            let got = dominant_frequency(&s, 48_000, 20.0, 20_000.0);
            assert!((got - f).abs() < 0.2, "wanted {f}, got {got}");
        }
    }

    #[test]
    fn dominant_frequency_respects_range_and_silence() {
        let mut s = sine(300.0, 0.8, 48_000, 1.0);
        for (x, y) in s.iter_mut().zip(sine(2000.0, 0.1, 48_000, 1.0)) {
            *x += y;
        }
        let low = dominant_frequency(&s, 48_000, 20.0, 20_000.0);
        let high = dominant_frequency(&s, 48_000, 1000.0, 20_000.0);
        assert!((low - 300.0).abs() < 0.5, "{low}");
        assert!((high - 2000.0).abs() < 0.5, "{high}");
        assert_eq!(
            dominant_frequency(&vec![0.0; 4800], 48_000, 20.0, 20_000.0),
            0.0
        );
        assert_eq!(dominant_frequency(&s, 48_000, 500.0, 400.0), 0.0);
    }

    #[test]
    fn tone_segments_finds_order_and_lengths() {
        let rate = 48_000;
        let mut s = sine(440.0, 0.5, rate, 0.5);
        s.extend(vec![0.0; 12_000]); // 0.25 s of silence
        s.extend(sine(660.0, 0.5, rate, 0.3));
        s.extend(sine(880.0, 0.5, rate, 0.7));
        let segs = tone_segments(&s, rate, &[440.0, 660.0, 880.0], 0.02);
        let freqs: Vec<f32> = segs.iter().map(|s| s.0).collect();
        assert_eq!(freqs, vec![440.0, 660.0, 880.0], "{segs:?}");
        let lens: Vec<f32> = segs.iter().map(|s| s.2 - s.1).collect();
        for (got, want) in lens.iter().zip([0.5, 0.3, 0.7]) {
            assert!((got - want).abs() <= 0.041, "lengths {lens:?}");
        }
        assert!((segs[1].1 - 0.75).abs() <= 0.021, "{segs:?}");
    }

    #[test]
    fn max_step_and_channel_split() {
        let inter = [0.0, 1.0, 0.5, 1.0, 0.0, 1.0];
        assert_eq!(channel(&inter, 2, 0), vec![0.0, 0.5, 0.0]);
        assert_eq!(channel(&inter, 2, 1), vec![1.0, 1.0, 1.0]);
        assert_eq!(max_step(&channel(&inter, 2, 0)), 0.5);
    }
}
