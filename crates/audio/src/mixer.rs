//! The mixing arithmetic: summing sounds with gain, fades that never click, and a limiter so
//! overlapping sounds never exceed full scale while a single sound at unity passes untouched.

use std::sync::Arc;

use crate::shaping::{Shape, Window};
use crate::stream::{Source, StreamReader};
use crate::{CHANNELS, FRAME_LEN, SAMPLE_RATE};

/// Where a cursor's samples come from.
#[derive(Debug)]
pub enum Feed {
    /// 48 kHz stereo interleaved, shared with the sound library (never copied).
    Memory(Arc<[f32]>),
    /// A long clip from disk, a frame per tick out of its ring.
    Stream(Box<StreamFeed>),
}

/// The tick's side of a streamed sound: this tick's frame, taken from the ring once.
#[derive(Debug)]
pub struct StreamFeed {
    reader: StreamReader,
    frame: Box<[f32; FRAME_LEN]>,
    /// Interleaved samples of `frame` that hold audio (fewer on an underrun or at the end).
    got: usize,
    loaded: bool,
    /// Audio has arrived: before that an empty ring is the file opening, not an underrun.
    started: bool,
    /// Ticks whose frame the ring could not fill in time (they played silence for the gap).
    pub underruns: u64,
}

impl StreamFeed {
    /// Why the stream ended early, once it has.
    pub fn error(&self) -> Option<&str> {
        self.reader.error()
    }
}

/// A read position in a sound: what the mixer needs to play it.
#[derive(Debug)]
pub struct Cursor {
    pub feed: Feed,
    /// The trimmed, faded part of the sound that plays (interleaved sample bounds).
    pub window: Window,
    /// Inside `window`, on a frame boundary.
    pub position: usize,
    pub gain: f32,
    pub looped: bool,
    /// Frames (per channel) left in a stop fade; `None` while playing normally.
    pub fade_out: Option<u32>,
}

impl Cursor {
    pub fn new(samples: Arc<[f32]>, gain: f32, looped: bool) -> Self {
        Self::shaped(samples, gain, looped, &Shape::default())
    }

    /// A cursor playing only the trim window of `samples`, through its fades.
    pub fn shaped(samples: Arc<[f32]>, gain: f32, looped: bool, shape: &Shape) -> Self {
        Self::open(Source::Memory(samples), gain, looped, shape)
    }

    /// A cursor for any sound; a streamed one starts its decode-ahead thread (which opens the
    /// file: this returns at once).
    pub fn open(source: Source, gain: f32, looped: bool, shape: &Shape) -> Self {
        let window = shape.window(source.len());
        let feed = match source {
            Source::Memory(samples) => Feed::Memory(samples),
            Source::Stream(clip) => Feed::Stream(Box::new(StreamFeed {
                reader: StreamReader::open(&clip, window, looped),
                frame: Box::new([0.0; FRAME_LEN]),
                got: 0,
                loaded: false,
                started: false,
                underruns: 0,
            })),
        };
        Self {
            feed,
            window,
            position: window.start,
            gain,
            looped,
            fade_out: None,
        }
    }

    /// Starts the stop fade (if not already fading).
    pub fn stop(&mut self) {
        self.fade_out.get_or_insert(FADE_FRAMES);
    }

    /// How far through the sound, 0..=1 (for progress bars).
    pub fn progress(&self) -> f32 {
        match self.window.len() {
            0 => 1.0,
            len => ((self.position - self.window.start) as f32 / len as f32).min(1.0),
        }
    }

    /// The streamed side, if the sound streams.
    pub fn stream(&self) -> Option<&StreamFeed> {
        match &self.feed {
            Feed::Stream(s) => Some(s),
            Feed::Memory(_) => None,
        }
    }

    /// Makes this tick's frame readable by [`add_frame`]: a streamed sound takes it from its
    /// ring, once per tick, without waiting; a short ring is an underrun (silence for the
    /// gap, the audio continues in order next tick). Nothing to do for a sound in memory.
    pub fn load(&mut self) {
        let Feed::Stream(s) = &mut self.feed else {
            return;
        };
        if s.loaded {
            return;
        }
        s.loaded = true;
        // Not past the window's end: a frame straddling it carries only the rest.
        let want = if self.looped {
            FRAME_LEN
        } else {
            FRAME_LEN.min(self.window.end.saturating_sub(self.position))
        };
        s.got = s.reader.pop(&mut s.frame[..want]);
        s.started |= s.got > 0;
        if s.started && s.got < want && !s.reader.is_finished() {
            s.underruns += 1;
            if s.underruns.is_power_of_two() {
                tracing::warn!(
                    underruns = s.underruns,
                    "a streamed sound's ring ran dry: playing silence until it catches up"
                );
            }
        }
    }
}

/// Length of the fade applied when a sound is stopped, and of the push-to-talk gate ramps.
pub const FADE_FRAMES: u32 = SAMPLE_RATE / 100; // 10 ms

/// Adds one 20 ms frame of `p` into `out` (interleaved stereo), scaled by `gain`, honouring
/// looping and a stop fade. Reads only; [`advance`] moves the sound on. A streamed sound
/// plays what [`Cursor::load`] took this tick.
pub fn add_frame(out: &mut [f32], p: &Cursor, gain: f32) {
    let w = p.window;
    if w.is_empty() {
        return;
    }
    let gain = gain * p.gain;
    let mut pos = p.position;
    let mut fade = p.fade_out;
    for (k, frame) in out.chunks_exact_mut(CHANNELS).enumerate() {
        if pos >= w.end {
            if !p.looped {
                break;
            }
            pos = w.start;
        }
        let samples = match &p.feed {
            Feed::Memory(samples) => &samples[pos..pos + CHANNELS],
            Feed::Stream(s) if s.loaded && k * CHANNELS < s.got => {
                &s.frame[k * CHANNELS..(k + 1) * CHANNELS]
            }
            Feed::Stream(_) => break,
        };
        let gain = gain * w.envelope(pos);
        let g = match fade {
            Some(0) => break,
            Some(left) => {
                fade = Some(left - 1);
                gain * left as f32 / FADE_FRAMES as f32
            }
            None => gain,
        };
        for (o, s) in frame.iter_mut().zip(samples) {
            *o += s * g;
        }
        pos += CHANNELS;
    }
}

/// Moves a sound on by one frame. Returns `false` when it has ended.
pub fn advance(p: &mut Cursor) -> bool {
    let w = p.window;
    if let Some(left) = p.fade_out {
        let step = (FRAME_LEN / CHANNELS) as u32;
        if left <= step {
            return false;
        }
        p.fade_out = Some(left - step);
    }
    let step = match &mut p.feed {
        Feed::Memory(_) => FRAME_LEN,
        Feed::Stream(s) => {
            // A frame never taken (nobody mixed this tick) moves nothing.
            let got = if s.loaded { s.got } else { 0 };
            s.loaded = false;
            if got == 0 && s.reader.is_finished() {
                if let Some(e) = s.reader.error() {
                    tracing::warn!(error = e, "a streamed sound ended early");
                }
                return false;
            }
            got
        }
    };
    p.position += step;
    if p.position >= w.end {
        if p.looped && !w.is_empty() {
            p.position = w.start + (p.position - w.start) % w.len();
        } else {
            return false;
        }
    }
    true
}

/// A peak limiter with instant attack and smooth release, the gain linked across channels.
///
/// Instant attack means no lookahead (no added latency) and a hard guarantee: no output sample
/// exceeds the ceiling. Below the ceiling the gain returns to exactly 1.0, so audio that never
/// reaches full scale passes bit-identical.
#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f32,
    release: f32,
}

/// The ceiling: full scale.
const CEILING: f32 = 1.0;
/// Release time constant.
const RELEASE_SECONDS: f32 = 0.08;

impl Default for Limiter {
    fn default() -> Self {
        Self {
            gain: 1.0,
            release: 1.0 - (-1.0 / (RELEASE_SECONDS * SAMPLE_RATE as f32)).exp(),
        }
    }
}

impl Limiter {
    pub fn gain(&self) -> f32 {
        self.gain
    }

    pub fn process(&mut self, buf: &mut [f32]) {
        for frame in buf.chunks_exact_mut(CHANNELS) {
            let peak = frame.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            if self.gain < 1.0 {
                // Snap home once within 0.01 dB, so quiet audio is bit-exact again.
                self.gain += (1.0 - self.gain) * self.release;
                if self.gain > 0.999 {
                    self.gain = 1.0;
                }
            }
            if peak * self.gain > CEILING {
                self.gain = CEILING / peak;
            }
            if self.gain != 1.0 {
                for s in frame.iter_mut() {
                    *s = (*s * self.gain).clamp(-CEILING, CEILING);
                }
            }
        }
    }
}

/// A push-to-talk gate: opens and closes over [`FADE_FRAMES`] so the mic never clicks in or out.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    level: f32,
}

impl Gate {
    pub fn is_closed(&self) -> bool {
        self.level == 0.0
    }

    /// Scales `buf` (interleaved stereo) while ramping towards open or closed.
    pub fn apply(&mut self, buf: &mut [f32], open: bool) {
        let target = if open { 1.0 } else { 0.0 };
        let step = 1.0 / FADE_FRAMES as f32;
        for frame in buf.chunks_exact_mut(CHANNELS) {
            if self.level < target {
                self.level = (self.level + step).min(1.0);
            } else if self.level > target {
                self.level = (self.level - step).max(0.0);
            }
            for s in frame.iter_mut() {
                *s *= self.level;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playback(samples: Vec<f32>, looped: bool) -> Cursor {
        Cursor::new(Arc::from(samples), 1.0, looped)
    }

    fn sine(freq: f32, amp: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let s = amp * (i as f32 * freq * std::f32::consts::TAU / SAMPLE_RATE as f32).sin();
                [s, s]
            })
            .collect()
    }

    #[test]
    fn one_sound_at_unity_passes_bit_identical() {
        let samples = sine(440.0, 1.0, 960 * 5);
        let mut p = playback(samples.clone(), false);
        let mut limiter = Limiter::default();
        let mut out = Vec::new();
        loop {
            let mut frame = vec![0.0; FRAME_LEN];
            add_frame(&mut frame, &p, 1.0);
            limiter.process(&mut frame);
            out.extend_from_slice(&frame);
            if !advance(&mut p) {
                break;
            }
        }
        assert_eq!(out, samples);
    }

    /// `Voice::play` takes any buffer: an odd length (half a stereo frame at the end) must not
    /// read past it, looped or not.
    #[test]
    fn an_odd_length_buffer_plays_its_whole_frames() {
        for looped in [false, true] {
            let mut samples = sine(440.0, 0.5, 960 + 7);
            samples.push(0.25); // the stray half-frame
            let mut p = playback(samples, looped);
            for _ in 0..4 {
                let mut frame = vec![0.0; FRAME_LEN];
                add_frame(&mut frame, &p, 1.0);
                if !advance(&mut p) {
                    assert!(!looped, "a looped sound goes on");
                    break;
                }
            }
            assert!(p.progress() <= 1.0);
        }
    }

    #[test]
    fn overlapping_full_scale_sounds_never_clip_and_the_limiter_releases() {
        let a = playback(sine(440.0, 1.0, 960 * 10), false);
        let b = playback(sine(440.0, 1.0, 960 * 10), false);
        let quiet = playback(sine(440.0, 0.25, 960 * 40), false);
        let mut limiter = Limiter::default();
        let (mut a, mut b, mut quiet) = (a, b, quiet);
        let mut max = 0.0f32;
        for tick in 0..40 {
            let mut frame = vec![0.0; FRAME_LEN];
            if tick < 10 {
                add_frame(&mut frame, &a, 1.0);
                add_frame(&mut frame, &b, 1.0);
                advance(&mut a);
                advance(&mut b);
            }
            add_frame(&mut frame, &quiet, 1.0);
            advance(&mut quiet);
            limiter.process(&mut frame);
            max = frame.iter().fold(max, |m, s| m.max(s.abs()));
        }
        assert!(max <= 1.0, "peak {max}");
        assert_eq!(limiter.gain(), 1.0, "released after the loud part");
    }

    #[test]
    fn stop_fade_ramps_down_to_silence_within_ten_ms() {
        let mut p = playback(vec![0.5; FRAME_LEN * 10], false);
        p.fade_out = Some(FADE_FRAMES);
        let mut frame = vec![0.0; FRAME_LEN];
        add_frame(&mut frame, &p, 1.0);
        assert!((frame[0] - 0.5).abs() < 1e-6, "starts at full level");
        let last_nonzero = frame.iter().rposition(|s| *s != 0.0).unwrap();
        assert!(
            last_nonzero < (FADE_FRAMES as usize) * CHANNELS,
            "silent after 10 ms"
        );
        let steps: f32 = frame
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(steps < 0.01, "no click: largest step {steps}");
        assert!(!advance(&mut p), "a faded sound ends");
    }

    #[test]
    fn looping_wraps_and_plain_sounds_end() {
        let mut p = playback(vec![0.1; FRAME_LEN * 2], true);
        for _ in 0..10 {
            assert!(advance(&mut p));
        }
        let mut q = playback(vec![0.1; FRAME_LEN * 2], false);
        assert!(advance(&mut q));
        assert!(!advance(&mut q));
    }

    #[test]
    fn a_shaped_cursor_plays_its_window_and_loops_within_it() {
        // Each frame's value is its index: what plays shows where it came from.
        let samples: Vec<f32> = (0..FRAME_LEN * 10).map(|i| (i / CHANNELS) as f32).collect();
        let shape = Shape {
            start: 0.02,
            end: Some(0.06),
            ..Shape::default()
        };
        let mut p = Cursor::shaped(Arc::from(samples), 1.0, false, &shape);
        let mut heard = Vec::new();
        loop {
            let mut frame = vec![0.0; FRAME_LEN];
            add_frame(&mut frame, &p, 1.0);
            heard.extend(frame.iter().step_by(CHANNELS).copied());
            if !advance(&mut p) {
                break;
            }
        }
        let expected: Vec<f32> = (960..2_880).map(|i| i as f32).collect();
        assert_eq!(heard, expected, "exactly the frames 20..60 ms");

        p.looped = true;
        p.position = p.window.start;
        for _ in 0..5 {
            assert!(advance(&mut p));
            assert!((p.window.start..p.window.end).contains(&p.position));
        }
    }

    #[test]
    fn gate_opens_and_closes_without_clicks() {
        let mut gate = Gate::default();
        let mut buf = vec![1.0; FRAME_LEN];
        gate.apply(&mut buf, true);
        assert_eq!(buf[0], 1.0 / FADE_FRAMES as f32);
        assert_eq!(*buf.last().unwrap(), 1.0);
        let mut buf = vec![1.0; FRAME_LEN];
        gate.apply(&mut buf, false);
        assert!(gate.is_closed());
        assert_eq!(*buf.last().unwrap(), 0.0);
    }
}
