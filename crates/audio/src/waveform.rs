//! A clip's waveform for drawing: the lowest and highest sample in each of a few thousand
//! buckets, computed once when the clip is decoded. Drawing then costs the same for a 1 s
//! clip and an hour-long one: at most [`BUCKETS`] values per frame, whatever the clip's length.

use crate::CHANNELS;

/// Buckets per clip: a few times wider than any dialog, so zooming to a screen's width still
/// has a bucket per pixel. 32 KiB per clip.
pub const BUCKETS: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Waveform {
    /// Per bucket, the lowest and the highest sample of either channel.
    pub peaks: Vec<(f32, f32)>,
    /// Frames (per channel) in the clip; bucket `i` covers frames
    /// `i * frames / n .. (i + 1) * frames / n` of `n` buckets.
    pub frames: usize,
}

impl Waveform {
    /// The waveform of 48 kHz stereo interleaved samples, in [`BUCKETS`] buckets (or one per
    /// frame for a clip shorter than that).
    pub fn compute(samples: &[f32]) -> Self {
        Self::with_buckets(samples, BUCKETS)
    }

    pub fn with_buckets(samples: &[f32], buckets: usize) -> Self {
        let frames = samples.len() / CHANNELS;
        let n = buckets.min(frames);
        let peaks = (0..n)
            .map(|i| {
                let (from, to) = (i * frames / n, (i + 1) * frames / n);
                min_max(&samples[from * CHANNELS..to * CHANNELS])
            })
            .collect();
        Waveform { peaks, frames }
    }

    /// The waveform squeezed (or stretched) to `columns` columns for drawing: each column the
    /// lowest and highest of the buckets under it. Costs O(buckets + columns).
    pub fn columns(&self, columns: usize) -> Vec<(f32, f32)> {
        let n = self.peaks.len();
        if n == 0 {
            return Vec::new();
        }
        (0..columns)
            .map(|c| {
                let from = c * n / columns;
                let to = ((c + 1) * n / columns).max(from + 1).min(n);
                self.peaks[from.min(n - 1)..to]
                    .iter()
                    .fold((0.0f32, 0.0f32), |(lo, hi), &(l, h)| (lo.min(l), hi.max(h)))
            })
            .collect()
    }
}

/// A waveform built from audio arriving a chunk at a time, in memory that does not grow with
/// the clip: buckets start one frame wide and double (merging neighbours) whenever there are
/// more than twice [`BUCKETS`], so an hour-long stream costs the same 64 KiB as a short clip.
#[derive(Debug, Clone)]
pub struct WaveformBuilder {
    peaks: Vec<(f32, f32)>,
    /// Frames per finished bucket.
    width: usize,
    /// The bucket being filled and the frames in it.
    open: (f32, f32),
    in_open: usize,
    frames: usize,
}

impl Default for WaveformBuilder {
    fn default() -> Self {
        Self {
            peaks: Vec::with_capacity(2 * BUCKETS + 1),
            width: 1,
            open: (0.0, 0.0),
            in_open: 0,
            frames: 0,
        }
    }
}

impl WaveformBuilder {
    /// Adds 48 kHz stereo interleaved samples.
    pub fn push(&mut self, samples: &[f32]) {
        let mut rest = &samples[..samples.len() / CHANNELS * CHANNELS];
        while !rest.is_empty() {
            let take = (self.width - self.in_open).min(rest.len() / CHANNELS);
            let (lo, hi) = min_max(&rest[..take * CHANNELS]);
            self.open = (self.open.0.min(lo), self.open.1.max(hi));
            self.in_open += take;
            self.frames += take;
            rest = &rest[take * CHANNELS..];
            if self.in_open == self.width {
                self.peaks.push(self.open);
                self.open = (0.0, 0.0);
                self.in_open = 0;
                if self.peaks.len() > 2 * BUCKETS {
                    self.halve();
                }
            }
        }
    }

    /// Merges neighbouring buckets. Called just after a bucket closed, so nothing is open;
    /// an odd last bucket becomes the open one, half full at the new width.
    fn halve(&mut self) {
        let odd = if self.peaks.len() % 2 == 1 {
            self.peaks.pop()
        } else {
            None
        };
        self.peaks = self
            .peaks
            .chunks(2)
            .map(|p| (p[0].0.min(p[1].0), p[0].1.max(p[1].1)))
            .collect();
        self.width *= 2;
        if let Some(last) = odd {
            self.open = last;
            self.in_open = self.width / 2;
        }
    }

    /// The waveform, in at most [`BUCKETS`] buckets laid out as [`Waveform`] documents.
    pub fn finish(mut self) -> Waveform {
        if self.in_open > 0 {
            self.peaks.push(self.open);
        }
        let frames = self.frames;
        let m = self.peaks.len();
        let n = BUCKETS.min(frames).min(m);
        let peaks = (0..n)
            .map(|i| {
                let (from, to) = (i * m / n, ((i + 1) * m / n).max(i * m / n + 1));
                self.peaks[from..to.min(m)]
                    .iter()
                    .fold((0.0f32, 0.0f32), |(lo, hi), &(l, h)| (lo.min(l), hi.max(h)))
            })
            .collect();
        Waveform { peaks, frames }
    }
}

/// Lowest and highest value of `chunk` (0, 0 when empty). Eight independent lanes so the
/// compiler can keep them in vector registers: this loop is the whole cost of a long clip.
fn min_max(chunk: &[f32]) -> (f32, f32) {
    const LANES: usize = 8;
    let mut lo = [0.0f32; LANES];
    let mut hi = [0.0f32; LANES];
    let mut blocks = chunk.chunks_exact(LANES);
    for block in &mut blocks {
        for i in 0..LANES {
            lo[i] = lo[i].min(block[i]);
            hi[i] = hi[i].max(block[i]);
        }
    }
    let mut lo = lo.into_iter().fold(0.0f32, f32::min);
    let mut hi = hi.into_iter().fold(0.0f32, f32::max);
    for &s in blocks.remainder() {
        lo = lo.min(s);
        hi = hi.max(s);
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stereo clip whose value ramps from -1 to 1 over `frames` frames.
    fn ramp(frames: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let v = -1.0 + 2.0 * i as f32 / (frames - 1) as f32;
                [v, v]
            })
            .collect()
    }

    #[test]
    fn buckets_hold_the_extremes_of_their_stretch() {
        let w = Waveform::with_buckets(&ramp(1_000), 10);
        assert_eq!(w.frames, 1_000);
        assert_eq!(w.peaks.len(), 10);
        assert_eq!(
            w.peaks[0].0, -1.0,
            "the first bucket holds the lowest sample"
        );
        assert_eq!(w.peaks[9].1, 1.0, "the last the highest");
        for (lo, hi) in &w.peaks {
            assert!(lo <= hi);
        }
    }

    #[test]
    fn a_spike_in_one_channel_shows() {
        let mut samples = vec![0.0f32; 48_000 * CHANNELS];
        samples[12_345 * CHANNELS + 1] = -0.9;
        let w = Waveform::compute(&samples);
        assert_eq!(w.peaks.len(), BUCKETS);
        let lowest = w.peaks.iter().map(|p| p.0).fold(0.0, f32::min);
        assert_eq!(lowest, -0.9);
    }

    /// Built a chunk at a time, a long clip keeps its extremes where they were and the same
    /// bucket count as `compute`.
    #[test]
    fn the_builder_agrees_with_compute() {
        let frames = 3 * BUCKETS * 7 + 5;
        let mut samples = vec![0.0f32; frames * CHANNELS];
        let spike = frames / 3;
        samples[spike * CHANNELS] = 0.8;
        let mut b = WaveformBuilder::default();
        for chunk in samples.chunks(1_234) {
            b.push(chunk);
        }
        let built = b.finish();
        let whole = Waveform::compute(&samples);
        assert_eq!(built.frames, whole.frames);
        assert_eq!(built.peaks.len(), whole.peaks.len());
        let at = |w: &Waveform| w.peaks.iter().position(|p| p.1 == 0.8).unwrap() as f32;
        assert!(
            (at(&built) - at(&whole)).abs() <= 2.0,
            "{} vs {}",
            at(&built),
            at(&whole)
        );
        let short = WaveformBuilder::default();
        assert!(short.finish().peaks.is_empty());
    }

    #[test]
    fn short_and_empty_clips_and_any_column_count() {
        let w = Waveform::compute(&ramp(100));
        assert_eq!(w.peaks.len(), 100, "one bucket per frame");
        assert_eq!(w.columns(400).len(), 400, "stretched");
        assert_eq!(w.columns(7).len(), 7, "squeezed");
        assert_eq!(w.columns(7)[0].0, -1.0);
        let empty = Waveform::compute(&[]);
        assert!(empty.peaks.is_empty());
        assert!(empty.columns(10).is_empty());
    }
}
