//! What a listener in a guild's voice channel heard from the bot.

use std::time::Instant;

/// One RTP packet the listener received and decoded.
#[derive(Debug, Clone)]
pub struct HeardFrame {
    /// When it reached the listener: receipt at the UDP socket plus any injected delay.
    pub at: Instant,
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    /// The payload was exactly the Opus silence frame F8 FF FE.
    pub silence: bool,
    /// Decoded Opus, 48 kHz stereo interleaved (1920 values for 20 ms).
    pub pcm: Vec<f32>,
}

/// Everything heard in one guild, all SSRCs, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    pub frames: Vec<HeardFrame>,
}

impl Heard {
    /// All non-silence frames' PCM averaged to mono, concatenated.
    pub fn pcm_mono(&self) -> Vec<f32> {
        self.frames
            .iter()
            .filter(|f| !f.silence)
            .flat_map(|f| f.pcm.chunks_exact(2).map(|lr| (lr[0] + lr[1]) * 0.5))
            .collect()
    }

    /// Non-silence frames.
    pub fn audio_frames(&self) -> usize {
        self.frames.iter().filter(|f| !f.silence).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_skips_silence_and_averages() {
        let f = |silence, v: f32| HeardFrame {
            at: Instant::now(),
            ssrc: 1,
            seq: 0,
            timestamp: 0,
            silence,
            pcm: vec![v, -v / 2.0],
        };
        let h = Heard {
            frames: vec![f(false, 1.0), f(true, 9.0), f(false, 0.5)],
        };
        assert_eq!(h.audio_frames(), 2);
        assert_eq!(h.pcm_mono(), vec![0.25, 0.125]);
    }
}
