//! Non-destructive sound shaping: a trim window and fade-in/fade-out applied while a clip
//! plays. The decoded samples are shared with the library and never rewritten; a cursor plays
//! a window of them and scales each frame by the envelope.

use crate::{CHANNELS, SAMPLE_RATE};

/// Trim and fades as the user set them, in seconds of the clip.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Shape {
    /// Where playing starts.
    pub start: f64,
    /// Where it ends; `None` for the clip's end.
    pub end: Option<f64>,
    /// Ramp from silence after `start`.
    pub fade_in: f64,
    /// Ramp to silence before `end`.
    pub fade_out: f64,
}

impl Shape {
    /// Whether it changes nothing (the whole clip, no fades).
    pub fn is_identity(&self) -> bool {
        self.start <= 0.0 && self.end.is_none() && self.fade_in <= 0.0 && self.fade_out <= 0.0
    }

    /// The window this shape cuts from a clip of `len` interleaved samples. Values from a
    /// hand-edited board (negative, NaN, past the end, end before start) are clamped rather
    /// than trusted: the result always lies inside the clip.
    pub fn window(&self, len: usize) -> Window {
        let frames = len / CHANNELS;
        let to_frames = |secs: f64| {
            if secs.is_finite() && secs > 0.0 {
                ((secs * SAMPLE_RATE as f64).round() as usize).min(frames)
            } else {
                0
            }
        };
        let start = to_frames(self.start);
        let end = self.end.map_or(frames, to_frames).max(start);
        let fade = |secs: f64| to_frames(secs).min(end - start) as u32;
        Window {
            start: start * CHANNELS,
            end: end * CHANNELS,
            fade_in: fade(self.fade_in),
            fade_out: fade(self.fade_out),
        }
    }
}

/// A shape resolved against one clip: interleaved sample bounds and fade lengths in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First interleaved sample played (a frame boundary).
    pub start: usize,
    /// One past the last (a frame boundary, `>= start`).
    pub end: usize,
    pub fade_in: u32,
    pub fade_out: u32,
}

impl Window {
    /// The whole of a clip of `len` interleaved samples, unfaded (half a trailing frame is
    /// dropped, so reads never pass the end).
    pub fn whole(len: usize) -> Self {
        Window {
            start: 0,
            end: len / CHANNELS * CHANNELS,
            fade_in: 0,
            fade_out: 0,
        }
    }

    /// Interleaved samples in the window.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The envelope's gain at interleaved sample `pos` (inside the window): linear ramps, so
    /// what is heard matches the straight lines the edit dialog draws. Exactly 1.0 outside the
    /// ramps, so an unfaded sound passes bit-identical.
    pub fn envelope(&self, pos: usize) -> f32 {
        let from_start = (pos.saturating_sub(self.start) / CHANNELS) as u32;
        let to_end = (self.end.saturating_sub(pos) / CHANNELS) as u32;
        let mut g = 1.0f32;
        if from_start < self.fade_in {
            g = from_start as f32 / self.fade_in as f32;
        }
        // `to_end` counts this frame too: the last frame of a fade-out is at gain 0.
        if to_end <= self.fade_out {
            g = g.min(to_end.saturating_sub(1) as f32 / self.fade_out as f32);
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: usize = SAMPLE_RATE as usize * CHANNELS;

    #[test]
    fn the_identity_shape_is_the_whole_clip() {
        let w = Shape::default().window(SECOND + 1);
        assert_eq!(w, Window::whole(SECOND + 1));
        assert_eq!(w.len(), SECOND);
        assert!(Shape::default().is_identity());
        assert_eq!(w.envelope(0), 1.0);
        assert_eq!(w.envelope(SECOND - 2), 1.0);
    }

    #[test]
    fn trim_and_fades_become_frame_bounds() {
        let shape = Shape {
            start: 0.25,
            end: Some(0.75),
            fade_in: 0.1,
            fade_out: 0.05,
        };
        let w = shape.window(SECOND);
        assert_eq!(w.start, SECOND / 4);
        assert_eq!(w.end, SECOND * 3 / 4);
        assert_eq!((w.fade_in, w.fade_out), (4_800, 2_400));
        assert_eq!(w.envelope(w.start), 0.0, "the fade-in starts silent");
        assert!((w.envelope(w.start + 2_400 * CHANNELS) - 0.5).abs() < 1e-6);
        assert_eq!(
            w.envelope(w.start + SECOND / 8),
            1.0,
            "full level between the fades"
        );
        assert_eq!(
            w.envelope(w.end - CHANNELS),
            0.0,
            "the fade-out ends silent"
        );
    }

    #[test]
    fn nonsense_from_a_hand_edited_board_is_clamped() {
        for shape in [
            Shape {
                start: f64::NAN,
                end: Some(-3.0),
                fade_in: f64::INFINITY,
                fade_out: -1.0,
            },
            Shape {
                start: 5.0,
                end: Some(1.0),
                fade_in: 9.0,
                fade_out: 9.0,
            },
        ] {
            let w = shape.window(SECOND);
            assert!(w.start <= w.end && w.end <= SECOND, "{w:?}");
            assert!(w.fade_in as usize <= w.len() / CHANNELS);
            assert!(w.fade_out as usize <= w.len() / CHANNELS);
        }
    }

    #[test]
    fn overlapping_fades_take_the_lower_ramp() {
        let shape = Shape {
            fade_in: 1.0,
            fade_out: 1.0,
            ..Shape::default()
        };
        let w = shape.window(SECOND);
        let middle = w.envelope(SECOND / 2);
        assert!((middle - 0.5).abs() < 1e-3, "{middle}");
    }
}
