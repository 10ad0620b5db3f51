//! Any sample rate and channel count → Voxboard's 48 kHz stereo interleaved f32.
//!
//! Clips are converted once, whole, when they are loaded, so the engine only ever copies
//! samples. rubato's FFT resampler runs over the clip with its own overlap handling, so there
//! are no seams at its internal chunk boundaries.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::{CHANNELS, SAMPLE_RATE};

/// Lowest source rate accepted. Below this the FFT sizes rubato needs grow without bound,
/// and no real audio file uses such rates.
pub const MIN_RATE: u32 = 4_000;
/// Highest source rate accepted (4 × 96 kHz covers every studio format).
pub const MAX_RATE: u32 = 384_000;
/// Most channels accepted (7.1.4 and friends fit; more is not a sound file for a soundboard).
pub const MAX_CHANNELS: usize = 32;

/// Frames per resampler chunk: small enough for a short delay, large enough to be fast.
const CHUNK: usize = 1024;

/// Why a conversion could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResampleError {
    #[error("sample rate {0} Hz is not supported (must be {MIN_RATE}..={MAX_RATE} Hz)")]
    Rate(u32),
    #[error("{0} channels are not supported (must be 1..={MAX_CHANNELS})")]
    Channels(usize),
    #[error("resampler failed: {0}")]
    Resampler(String),
}

/// Converts interleaved audio at `rate` Hz with `channels` channels to 48 kHz stereo.
///
/// Mono is resampled first and then copied to both sides (half the work); wider input is
/// mixed down to stereo first for the same reason. A trailing partial frame is dropped.
pub fn to_output_format(
    samples: &[f32],
    rate: u32,
    channels: usize,
) -> Result<Vec<f32>, ResampleError> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(ResampleError::Rate(rate));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(ResampleError::Channels(channels));
    }
    let whole = samples.len() - samples.len() % channels;
    let samples = &samples[..whole];
    if channels == 1 {
        let mono = resample(samples, rate, 1)?;
        return Ok(mono.iter().flat_map(|&s| [s, s]).collect());
    }
    let stereo = if channels == CHANNELS {
        samples.to_vec()
    } else {
        downmix_to_stereo(samples, channels)
    };
    resample(&stereo, rate, CHANNELS)
}

/// Resamples interleaved audio with `channels` channels from `rate` to 48 kHz. Returns the
/// input unchanged when it is already 48 kHz.
pub fn resample(samples: &[f32], rate: u32, channels: usize) -> Result<Vec<f32>, ResampleError> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(ResampleError::Rate(rate));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(ResampleError::Channels(channels));
    }
    let frames = samples.len() / channels;
    let samples = &samples[..frames * channels];
    if rate == SAMPLE_RATE || frames == 0 {
        return Ok(samples.to_vec());
    }
    let fail = |e: &dyn std::fmt::Display| ResampleError::Resampler(e.to_string());
    let mut resampler = Fft::<f32>::new(
        rate as usize,
        SAMPLE_RATE as usize,
        CHUNK,
        channels,
        FixedSync::Input,
    )
    .map_err(|e| fail(&e))?;
    let input = InterleavedSlice::new(samples, channels, frames).map_err(|e| fail(&e))?;
    // process_all trims the resampler's start-up delay and returns exactly the
    // rate-converted length, so timing is preserved.
    let out = resampler
        .process_all(&input, frames, None)
        .map_err(|e| fail(&e))?;
    let mut out = out.take_data();
    // rubato may round up by a frame; keep the exact rate-converted length so that a 0.5 s
    // file is exactly 0.5 s and frame counts stay predictable.
    let exact = (frames as u64 * u64::from(SAMPLE_RATE) + u64::from(rate) / 2) / u64::from(rate);
    out.truncate(exact as usize * channels);
    Ok(out)
}

/// Left/right gains for channel `index` of a `channels`-wide file in the usual WAVE/SMPTE
/// order (FL, FR, FC, LFE, BL, BR, SL, SR, ...). The centre goes to both sides at -3 dB, the
/// LFE is dropped (it is mostly below what voice chat carries), rears and sides fold into
/// their own side at -3 dB. Layouts with unusual counts alternate left/right.
pub fn downmix_gains(index: usize, channels: usize) -> (f32, f32) {
    const H: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let named = match channels {
        3 => Some([(1.0, 0.0), (0.0, 1.0), (H, H)].get(index).copied()),
        4 => Some(
            [(1.0, 0.0), (0.0, 1.0), (H, 0.0), (0.0, H)]
                .get(index)
                .copied(),
        ),
        5 => Some(
            [(1.0, 0.0), (0.0, 1.0), (H, H), (H, 0.0), (0.0, H)]
                .get(index)
                .copied(),
        ),
        6..=8 => Some(
            [
                (1.0, 0.0),
                (0.0, 1.0),
                (H, H),
                (0.0, 0.0),
                (H, 0.0),
                (0.0, H),
                (H, 0.0),
                (0.0, H),
            ]
            .get(index)
            .copied(),
        ),
        _ => None,
    };
    match named.flatten() {
        Some(g) => g,
        None if index.is_multiple_of(2) => (1.0, 0.0),
        None => (0.0, 1.0),
    }
}

/// Mixes interleaved audio with `channels` (> 2) channels down to interleaved stereo.
/// Each side is divided by the sum of its gains, so full-scale input stays within [-1, 1].
pub fn downmix_to_stereo(samples: &[f32], channels: usize) -> Vec<f32> {
    if channels == 0 {
        return Vec::new();
    }
    let gains: Vec<(f32, f32)> = (0..channels).map(|i| downmix_gains(i, channels)).collect();
    let l_sum: f32 = gains.iter().map(|g| g.0).sum::<f32>().max(1e-6);
    let r_sum: f32 = gains.iter().map(|g| g.1).sum::<f32>().max(1e-6);
    let mut out = Vec::with_capacity(samples.len() / channels * CHANNELS);
    for frame in samples.chunks_exact(channels) {
        let (mut l, mut r) = (0.0f32, 0.0f32);
        for (&s, &(gl, gr)) in frame.iter().zip(&gains) {
            l += s * gl;
            r += s * gr;
        }
        out.push(l / l_sum);
        out.push(r / r_sum);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{channel, dominant_frequency, max_step, rms};
    use std::f32::consts::PI;

    fn sine(freq: f32, amp: f32, rate: u32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn resampling_44k1_keeps_pitch_length_and_has_no_clicks() {
        let input = sine(1000.0, 0.5, 44_100, 44_100);
        let out = to_output_format(&input, 44_100, 1).expect("resample");
        let left = channel(&out, 2, 0);
        let right = channel(&out, 2, 1);
        assert_eq!(left, right, "mono must land on both sides");
        // Exactly one second in, one second out (within a frame of rounding).
        assert_eq!(left.len(), 48_000);
        let f = dominant_frequency(&left, 48_000, 20.0, 20_000.0);
        assert!((f - 1000.0).abs() < 1.0, "frequency {f}");
        // A 0.5-amplitude 1 kHz sine at 48 kHz moves at most 2π·1000/48000·0.5 ≈ 0.065 per
        // sample; a seam between resampler chunks would jump far more. Skip the edges, where
        // the clip starts/stops abruptly by design.
        let inner = &left[200..left.len() - 200];
        let step = max_step(inner);
        assert!(step < 0.07, "max step {step}");
        let level = rms(inner);
        assert!((level - 0.5 / 2f32.sqrt()).abs() < 0.01, "rms {level}");
    }

    #[test]
    fn click_check_catches_a_seam() {
        // A chunk seam that loses or repeats a few samples (the classic chunked-resampling
        // bug) must trip the same threshold the tests above use.
        let whole = resample(&sine(1000.0, 0.5, 44_100, 44_100), 44_100, 1).expect("whole");
        let mut seamed = whole.clone();
        seamed.drain(24_000..24_012);
        let (w, s) = (
            max_step(&whole[200..whole.len() - 200]),
            max_step(&seamed[200..seamed.len() - 200]),
        );
        assert!(w < 0.07 && s > 0.1, "whole {w}, seamed {s}");
    }

    #[test]
    fn odd_rates_resample_cleanly() {
        for &rate in &[8_000u32, 22_050, 32_000, 96_000, 44_101] {
            let input = sine(440.0, 0.5, rate, rate as usize);
            let out = resample(&input, rate, 1).expect("resample");
            assert!(out.len().abs_diff(48_000) <= 1, "{rate}: len {}", out.len());
            let f = dominant_frequency(&out, 48_000, 20.0, 20_000.0);
            assert!((f - 440.0).abs() < 1.0, "{rate}: frequency {f}");
            assert!(max_step(&out[200..out.len() - 200]) < 0.03, "{rate}: click");
        }
    }

    #[test]
    fn already_48k_is_passed_through() {
        let input: Vec<f32> = sine(300.0, 0.2, 48_000, 960)
            .iter()
            .flat_map(|&s| [s, -s])
            .collect();
        assert_eq!(to_output_format(&input, 48_000, 2).expect("same"), input);
    }

    #[test]
    fn surround_downmix_keeps_sides_and_stays_in_range() {
        // 5.1 with left-only content in FL and full scale everywhere else.
        let frames = 100;
        let mut six = Vec::new();
        for _ in 0..frames {
            six.extend([1.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
        }
        let st = downmix_to_stereo(&six, 6);
        assert_eq!(st.len(), frames * 2);
        assert!(st[0] > st[1], "left content must lean left: {:?}", &st[..2]);
        let all_full = downmix_to_stereo(&[1.0; 60], 6);
        assert!(all_full.iter().all(|&s| s <= 1.0 + 1e-6), "{all_full:?}");
        // Unusual widths still split left/right.
        let nine = downmix_to_stereo(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 9);
        assert_eq!(nine, vec![1.0, 0.0]);
    }

    #[test]
    fn bad_formats_are_errors_not_panics() {
        assert_eq!(
            to_output_format(&[0.0; 4], 0, 2),
            Err(ResampleError::Rate(0))
        );
        assert_eq!(
            to_output_format(&[0.0; 4], 1, 2),
            Err(ResampleError::Rate(1))
        );
        assert_eq!(
            to_output_format(&[0.0; 4], 44_100, 0),
            Err(ResampleError::Channels(0))
        );
        assert_eq!(to_output_format(&[], 44_100, 2), Ok(vec![]));
        // A dangling half frame is dropped rather than shifting the channels.
        assert_eq!(
            to_output_format(&[0.5, 0.5, 0.5], 48_000, 2)
                .expect("ok")
                .len(),
            2
        );
    }
}
