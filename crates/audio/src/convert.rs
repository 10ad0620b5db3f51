//! Chunked conversion to Voxboard's format: source audio goes in a packet at a time and
//! 48 kHz stereo comes out a chunk at a time, so neither a decode into memory nor a stream
//! from disk ever holds the whole source (or a second full copy of it).
//!
//! The output matches [`crate::resample::to_output_format`] run on the whole clip: the
//! resampler's start-up delay is trimmed and the length is exactly the rate-converted one.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use super::resample::{MAX_CHANNELS, MAX_RATE, MIN_RATE, ResampleError, downmix_gains};
use super::{CHANNELS, SAMPLE_RATE};

/// Source frames per resampler chunk (as in `resample`).
const CHUNK: usize = 1024;

/// Converts interleaved audio of one rate and width to 48 kHz stereo, incrementally.
pub struct Converter {
    channels: usize,
    rate: u32,
    /// Width the resampler runs at: 1 for mono (copied to both sides after), else 2.
    width: usize,
    gains: Vec<(f32, f32)>,
    sums: (f32, f32),
    resampler: Option<Fft<f32>>,
    /// Source frames (at `width`) waiting for a full resampler chunk.
    pending: Vec<f32>,
    out: Vec<f32>,
    stereo: Vec<f32>,
    /// Output frames still to drop (the resampler's delay).
    to_trim: usize,
    frames_in: u64,
    frames_out: u64,
}

impl Converter {
    pub fn new(rate: u32, channels: usize) -> Result<Self, ResampleError> {
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(ResampleError::Rate(rate));
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(ResampleError::Channels(channels));
        }
        let width = if channels == 1 { 1 } else { CHANNELS };
        let gains: Vec<(f32, f32)> = (0..channels).map(|i| downmix_gains(i, channels)).collect();
        let sums = (
            gains.iter().map(|g| g.0).sum::<f32>().max(1e-6),
            gains.iter().map(|g| g.1).sum::<f32>().max(1e-6),
        );
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            let r = Fft::<f32>::new(
                rate as usize,
                SAMPLE_RATE as usize,
                CHUNK,
                width,
                FixedSync::Input,
            )
            .map_err(|e| ResampleError::Resampler(e.to_string()))?;
            Some(r)
        };
        let (to_trim, out_len) = resampler.as_ref().map_or((0, 0), |r| {
            (r.output_delay(), r.output_frames_max() * width)
        });
        Ok(Self {
            channels,
            rate,
            width,
            gains,
            sums,
            resampler,
            pending: Vec::with_capacity(CHUNK * width),
            out: vec![0.0; out_len],
            stereo: Vec::new(),
            to_trim,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// 48 kHz frames the whole input so far converts to (what `finish` will have emitted).
    fn exact_out(&self) -> u64 {
        let rate = u64::from(self.rate);
        (self.frames_in * u64::from(SAMPLE_RATE) + rate / 2) / rate
    }

    /// Feeds interleaved source samples (a trailing partial frame is dropped); `emit` gets
    /// 48 kHz stereo chunks.
    pub fn push(
        &mut self,
        samples: &[f32],
        emit: &mut dyn FnMut(&[f32]),
    ) -> Result<(), ResampleError> {
        let channels = self.channels;
        let mut rest = &samples[..samples.len() / channels * channels];
        self.frames_in += (rest.len() / channels) as u64;
        // A resampler chunk at a time (or a few, passing 48 kHz through), in slices: this
        // runs for every sample of every file, in debug builds too.
        let full = match self.resampler {
            Some(_) => CHUNK,
            None => 4 * CHUNK,
        };
        while !rest.is_empty() {
            let room = full.saturating_sub(self.pending.len() / self.width);
            if room == 0 {
                self.run(None, emit)?;
                continue;
            }
            let take = room.min(rest.len() / channels);
            let (now, later) = rest.split_at(take * channels);
            if channels <= CHANNELS {
                self.pending.extend_from_slice(now);
            } else {
                for frame in now.chunks_exact(channels) {
                    let (mut l, mut r) = (0.0f32, 0.0f32);
                    for (&s, &(gl, gr)) in frame.iter().zip(&self.gains) {
                        l += s * gl;
                        r += s * gr;
                    }
                    self.pending.push(l / self.sums.0);
                    self.pending.push(r / self.sums.1);
                }
            }
            rest = later;
            if self.pending.len() / self.width >= full {
                self.run(None, emit)?;
            }
        }
        Ok(())
    }

    /// Flushes the last partial chunk and the resampler's tail; after this the total emitted
    /// is exactly the rate-converted length of everything pushed.
    pub fn finish(mut self, emit: &mut dyn FnMut(&[f32])) -> Result<u64, ResampleError> {
        if self.resampler.is_none() {
            self.run(None, emit)?;
            return Ok(self.frames_out);
        }
        let exact = self.exact_out();
        let partial = self.pending.len() / self.width;
        self.run(Some(partial), emit)?;
        // The resampler still holds up to its delay in frames: pump silence through it.
        let mut guard = 0;
        while self.frames_out < exact && guard < 64 {
            self.run(Some(0), emit)?;
            guard += 1;
        }
        Ok(self.frames_out)
    }

    /// Resamples `pending` (a full chunk, or `partial` frames at the end) and emits the result,
    /// never past the exact length once the input is complete.
    fn run(
        &mut self,
        partial: Option<usize>,
        emit: &mut dyn FnMut(&[f32]),
    ) -> Result<(), ResampleError> {
        let fail = |e: &dyn std::fmt::Display| ResampleError::Resampler(e.to_string());
        let Some(resampler) = self.resampler.as_mut() else {
            if !self.pending.is_empty() {
                self.frames_out += (self.pending.len() / self.width) as u64;
                emit_width(&self.pending, self.width, &mut self.stereo, emit);
                self.pending.clear();
            }
            return Ok(());
        };
        let width = self.width;
        let needed = resampler.input_frames_next();
        // rubato reads `needed` frames even for a partial chunk: pad with zeros.
        let have = self.pending.len() / width;
        self.pending.resize(needed.max(have) * width, 0.0);
        let input =
            InterleavedSlice::new(&self.pending, width, needed.max(have)).map_err(|e| fail(&e))?;
        let out_frames = self.out.len() / width;
        let mut output =
            InterleavedSlice::new_mut(&mut self.out, width, out_frames).map_err(|e| fail(&e))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len: partial,
        };
        let (used, made) = resampler
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| fail(&e))?;
        let used = if partial.is_some() { have } else { used };
        self.pending.truncate(have * width);
        self.pending.drain(..used.min(have) * width);
        let skip = self.to_trim.min(made);
        self.to_trim -= skip;
        let mut take = made - skip;
        if partial.is_some() {
            let exact = self.exact_out();
            take = take.min(exact.saturating_sub(self.frames_out) as usize);
        }
        self.frames_out += take as u64;
        emit_width(
            &self.out[skip * width..(skip + take) * width],
            width,
            &mut self.stereo,
            emit,
        );
        Ok(())
    }
}

/// Emits `samples` of `width` 1 or 2 as stereo.
fn emit_width(samples: &[f32], width: usize, stereo: &mut Vec<f32>, emit: &mut dyn FnMut(&[f32])) {
    if samples.is_empty() {
        return;
    }
    if width == CHANNELS {
        emit(samples);
    } else {
        stereo.clear();
        stereo.extend(samples.iter().flat_map(|&s| [s, s]));
        emit(stereo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::to_output_format;

    fn sine(freq: f32, rate: u32, frames: usize, channels: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let s = 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin();
                (0..channels).map(move |c| s * (1.0 - 0.1 * c as f32))
            })
            .collect()
    }

    /// Chunked in odd packet sizes, the output is the whole-clip conversion's (same length,
    /// same samples to rounding).
    #[test]
    fn chunked_matches_whole_clip_conversion() {
        for (rate, channels, frames) in [
            (44_100, 1, 44_100),
            (44_100, 2, 30_001),
            (48_000, 2, 5_000),
            (22_050, 6, 12_345),
            (96_000, 2, 500),
        ] {
            let input = sine(440.0, rate, frames, channels);
            let whole = to_output_format(&input, rate, channels).expect("whole");
            let mut conv = Converter::new(rate, channels).expect("converter");
            let mut got = Vec::new();
            for packet in input.chunks(577 * channels) {
                conv.push(packet, &mut |c| got.extend_from_slice(c))
                    .expect("push");
            }
            let n = conv
                .finish(&mut |c| got.extend_from_slice(c))
                .expect("finish");
            assert_eq!(n as usize * 2, got.len());
            assert!(
                got.len().abs_diff(whole.len()) <= 2,
                "{rate}/{channels}: {} vs {}",
                got.len(),
                whole.len()
            );
            let worst = got
                .iter()
                .zip(&whole)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst < 1e-3, "{rate}/{channels}: differs by {worst}");
        }
    }
}
