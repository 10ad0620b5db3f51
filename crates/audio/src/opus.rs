//! Opus encoding and decoding in Discord's format: 48 kHz, stereo, 20 ms frames.
//!
//! The encoder runs on the engine thread every 20 ms, so `encode` works on caller-owned
//! buffers and never allocates. The decoder is for the simulator's listener and for tests.

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};

use super::{CHANNELS, FRAME_LEN};

/// The Opus packet Discord expects as "silence" (sent five times after speech stops).
pub const SILENCE_FRAME: [u8; 3] = [0xF8, 0xFF, 0xFE];
/// Largest Opus packet (RFC 6716 §3.2.1: 1275 bytes per frame); size output buffers with it.
pub const MAX_PACKET: usize = 1275;
/// Default bitrate: Discord's usual channel bitrate for good music quality.
pub const DEFAULT_BITRATE: u32 = 128_000;
/// Lowest bitrate accepted (Opus' useful minimum for stereo).
pub const MIN_BITRATE: u32 = 8_000;
/// Highest bitrate Opus supports.
pub const MAX_BITRATE: u32 = 512_000;
/// Longest packet duration Opus allows (120 ms), in interleaved stereo values: the most one
/// packet can decode to.
pub const MAX_DECODED_LEN: usize = 6 * FRAME_LEN;

/// Something went wrong in Opus, or the caller passed the wrong frame size.
#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    #[error("an Opus frame must hold {FRAME_LEN} interleaved samples (20 ms stereo), got {0}")]
    FrameSize(usize),
    #[error("Opus: {0}")]
    Codec(#[from] audiopus::Error),
}

/// Stereo 48 kHz Opus encoder for 20 ms frames.
pub struct OpusEncoder {
    inner: Encoder,
    bitrate: u32,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("bitrate", &self.bitrate)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder at `bitrate` bits/s (clamped to 8..=512 kbps), application Audio: clips are
    /// music and effects more than speech.
    pub fn new(bitrate: u32) -> Result<Self, OpusError> {
        let inner = Encoder::new(SampleRate::Hz48000, Channels::Stereo, Application::Audio)?;
        let mut enc = Self { inner, bitrate: 0 };
        enc.set_bitrate(bitrate)?;
        Ok(enc)
    }

    /// Changes the bitrate (clamped to 8..=512 kbps), e.g. when the channel's bitrate is known.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), OpusError> {
        let clamped = bitrate.clamp(MIN_BITRATE, MAX_BITRATE);
        // The clamp keeps the value far below i32::MAX, so the cast is exact.
        self.inner
            .set_bitrate(Bitrate::BitsPerSecond(clamped as i32))?;
        self.bitrate = clamped;
        Ok(())
    }

    /// The bitrate in use, after clamping.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// Encodes one 20 ms frame ([`FRAME_LEN`] interleaved values in [-1, 1]) into `out` and
    /// returns the packet length. `out` should hold [`MAX_PACKET`] bytes. No allocation.
    pub fn encode(&mut self, frame: &[f32], out: &mut [u8]) -> Result<usize, OpusError> {
        if frame.len() != FRAME_LEN {
            return Err(OpusError::FrameSize(frame.len()));
        }
        Ok(self.inner.encode_float(frame, out)?)
    }
}

/// Stereo 48 kHz Opus decoder.
pub struct OpusDecoder {
    inner: Decoder,
    scratch: Box<[f32]>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A decoder with room for the longest packet Opus allows (120 ms).
    pub fn new() -> Result<Self, OpusError> {
        Ok(Self {
            inner: Decoder::new(SampleRate::Hz48000, Channels::Stereo)?,
            scratch: vec![0.0; MAX_DECODED_LEN].into_boxed_slice(),
        })
    }

    /// Decodes `packet` and appends the interleaved stereo samples to `out`. Returns the
    /// number of samples per channel decoded (960 for a 20 ms packet). An empty `packet` means
    /// "lost": Opus conceals one 20 ms frame.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> Result<usize, OpusError> {
        let n = if packet.is_empty() {
            let signals = MutSignals::try_from(&mut self.scratch[..FRAME_LEN])?;
            self.inner.decode_float(None, signals, false)?
        } else {
            let packet = Packet::try_from(packet)?;
            let signals = MutSignals::try_from(&mut self.scratch[..])?;
            self.inner.decode_float(Some(packet), signals, false)?
        };
        let n = n.min(self.scratch.len() / CHANNELS);
        out.extend_from_slice(&self.scratch[..n * CHANNELS]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{channel, dominant_frequency, rms};
    use std::f32::consts::PI;

    fn stereo_sine(freq: f32, amp: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let s = amp * (2.0 * PI * freq * i as f32 / 48_000.0).sin();
                [s, s]
            })
            .collect()
    }

    fn round_trip(freq: f32, amp: f32, bitrate: u32) -> (Vec<f32>, Vec<f32>, usize) {
        let input = stereo_sine(freq, amp, 48_000);
        let mut enc = OpusEncoder::new(bitrate).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut packet = [0u8; MAX_PACKET];
        let mut out = Vec::new();
        let mut bytes = 0;
        for frame in input.chunks_exact(FRAME_LEN) {
            let n = enc.encode(frame, &mut packet).expect("encode");
            assert!(n > 0 && n <= MAX_PACKET);
            bytes += n;
            assert_eq!(dec.decode(&packet[..n], &mut out).expect("decode"), 960);
        }
        (input, out, bytes)
    }

    #[test]
    fn round_trip_keeps_frequency_and_level() {
        let (input, out, bytes) = round_trip(1000.0, 0.5, DEFAULT_BITRATE);
        assert_eq!(out.len(), input.len());
        // Skip the codec's start-up (lookahead + warm-up) before measuring.
        let left = channel(&out[9600..], 2, 0);
        let f = dominant_frequency(&left, 48_000, 20.0, 20_000.0);
        assert!((f - 1000.0).abs() < 1.0, "frequency {f}");
        let (a, b) = (rms(&input[9600..]), rms(&out[9600..]));
        assert!((b / a - 1.0).abs() < 0.1, "rms in {a}, out {b}");
        // 128 kbps for one second is 16 000 bytes; VBR lands near it.
        assert!((8_000..24_000).contains(&bytes), "bytes {bytes}");
        eprintln!("1 s of 1 kHz at 128 kbps: {bytes} bytes, {f:.3} Hz, rms {a:.4} -> {b:.4}");
    }

    #[test]
    fn bitrate_is_clamped_and_changes_packet_size() {
        assert_eq!(OpusEncoder::new(1).expect("enc").bitrate(), MIN_BITRATE);
        assert_eq!(
            OpusEncoder::new(10_000_000).expect("enc").bitrate(),
            MAX_BITRATE
        );
        let (_, _, low) = round_trip(440.0, 0.5, 16_000);
        let (_, _, high) = round_trip(440.0, 0.5, 256_000);
        assert!(
            low * 4 < high,
            "16 kbps {low} bytes vs 256 kbps {high} bytes"
        );
        eprintln!("1 s of 440 Hz: 16 kbps {low} bytes, 256 kbps {high} bytes");
    }

    #[test]
    fn wrong_frame_size_and_bad_packets_are_errors() {
        let mut enc = OpusEncoder::new(DEFAULT_BITRATE).expect("encoder");
        let mut packet = [0u8; MAX_PACKET];
        assert!(matches!(
            enc.encode(&[0.0; 100], &mut packet),
            Err(OpusError::FrameSize(100))
        ));
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut out = Vec::new();
        // A lost packet is concealed as one frame; the silence frame decodes to 20 ms.
        assert_eq!(dec.decode(&[], &mut out).expect("plc"), 960);
        assert_eq!(dec.decode(&SILENCE_FRAME, &mut out).expect("silence"), 960);
        assert!(rms(&out[FRAME_LEN..]) < 1e-3);
        // Garbage must be an error or some samples, never a crash.
        let mut rng_state = 0x1234_5678u32;
        for len in 1..200 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    rng_state = rng_state
                        .wrapping_mul(1_664_525)
                        .wrapping_add(1_013_904_223);
                    (rng_state >> 24) as u8
                })
                .collect();
            let before = out.len();
            if let Ok(n) = dec.decode(&junk, &mut out) {
                assert_eq!(out.len() - before, n * 2);
            }
        }
    }

    #[test]
    fn max_packet_holds_the_loudest_frame_at_the_top_bitrate() {
        // Full-scale noise at 512 kbps is the worst case for packet size.
        let mut enc = OpusEncoder::new(MAX_BITRATE).expect("encoder");
        let mut packet = [0u8; MAX_PACKET];
        let mut x = 0x2545_F491u32;
        let mut largest = 0;
        for _ in 0..50 {
            let frame: Vec<f32> = (0..FRAME_LEN)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as f32 / u32::MAX as f32 * 2.0 - 1.0
                })
                .collect();
            largest = largest.max(enc.encode(&frame, &mut packet).expect("fits"));
        }
        assert!(
            largest > 1000,
            "top bitrate should make big packets: {largest}"
        );
        eprintln!("largest packet at 512 kbps: {largest} bytes");
    }

    #[test]
    fn silence_in_gives_silence_out() {
        let mut enc = OpusEncoder::new(DEFAULT_BITRATE).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut packet = [0u8; MAX_PACKET];
        let mut out = Vec::new();
        for _ in 0..10 {
            let n = enc.encode(&[0.0; FRAME_LEN], &mut packet).expect("encode");
            dec.decode(&packet[..n], &mut out).expect("decode");
        }
        assert!(rms(&out) < 1e-4, "rms {}", rms(&out));
    }
}
