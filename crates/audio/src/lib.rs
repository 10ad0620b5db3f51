//! Every sample: decoding files, resampling, Opus.
//!
//! Inside Voxboard all audio is 48 kHz, stereo, interleaved `f32` in [-1, 1], cut into
//! 20 ms frames of [`FRAME_SAMPLES`] samples per channel: Discord's format.

/// Discord's (and Voxboard's) sample rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// Interleaved channels: Discord voice is stereo.
pub const CHANNELS: usize = 2;
/// Samples per channel in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;
/// Interleaved values in one 20 ms frame.
pub const FRAME_LEN: usize = FRAME_SAMPLES * CHANNELS;

pub mod analysis;
pub mod capture;
pub mod convert;
pub mod decode;
pub mod devices;
pub mod library;
pub mod loudness;
pub mod memory;
pub mod mixer;
pub mod monitor;
pub mod opus;
pub mod resample;
pub mod shaping;
pub mod stream;
pub mod waveform;
