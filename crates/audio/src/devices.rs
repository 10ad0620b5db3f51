//! Sound devices: listing them, finding one by id or name, and the per-sample conversions
//! between a device's format and Voxboard's 48 kHz stereo f32.
//!
//! No audio system at all (a server, CI without PulseAudio) is a normal state: listing gives
//! empty lists and opening gives an [`AudioDeviceError`], never a panic. cpal's ALSA host still
//! names `alsa:default` when no daemon runs, but every config query on it fails, so a device
//! whose default config cannot be read counts as unavailable.
//!
//! The conversion helpers ([`sample_to_f32`], [`f32_to_sample`], [`ToStereo`],
//! [`stereo_to_device`], [`StreamResampler`]) run inside audio callbacks: they never allocate,
//! lock or log, and all their state is plain fixed-size values set up before the stream starts.

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{FromSample, SupportedStreamConfig};

/// Widest device accepted (capture down-mix gains live in a fixed array of this size).
pub const MAX_DEVICE_CHANNELS: usize = 32;

/// Why a sound device could not be used. The messages are meant for the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioDeviceError {
    /// There is no such device, or no audio system at all.
    #[error("no audio device: {0}")]
    NoDevice(String),
    /// The device exists but offers nothing Voxboard can use.
    #[error("the audio device cannot be used: {0}")]
    UnsupportedConfig(String),
    /// The device accepted the format but the stream would not start.
    #[error("could not start the audio stream: {0}")]
    StreamBuild(String),
}

/// One device as the settings screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// cpal's device id, such as `alsa:default`; [`crate::capture::Microphone::open`]
    /// and [`crate::monitor::Monitor::open`] accept it back.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The device's default format in words ("2 ch, 48000 Hz, f32"), `None` when the device
    /// cannot be queried right now (unavailable).
    pub default_config: Option<String>,
}

/// Every input and output device of the default host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceList {
    pub inputs: Vec<DeviceInfo>,
    pub outputs: Vec<DeviceInfo>,
    /// Id of the default input, `None` when there is none or it is unavailable.
    pub default_input: Option<String>,
    /// Id of the default output, `None` when there is none or it is unavailable.
    pub default_output: Option<String>,
}

/// Lists the default host's devices. Never fails: what cannot be queried is left out or shown
/// without a config.
pub fn list_devices() -> DeviceList {
    let host = cpal::default_host();
    let info = |device: &cpal::Device, input: bool| -> Option<DeviceInfo> {
        let id = device.id().ok()?.to_string();
        let name = device
            .description()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|_| id.clone());
        let config = if input {
            device.default_input_config()
        } else {
            device.default_output_config()
        };
        Some(DeviceInfo {
            id,
            name,
            default_config: config.ok().map(|c| describe_config(&c)),
        })
    };
    let collect = |devices: Result<Vec<cpal::Device>, cpal::Error>, input: bool| {
        devices
            .map(|list| list.iter().filter_map(|d| info(d, input)).collect())
            .unwrap_or_default()
    };
    let usable_default = |device: Option<cpal::Device>, input: bool| {
        info(&device?, input)
            .filter(|i| i.default_config.is_some())
            .map(|i| i.id)
    };
    DeviceList {
        inputs: collect(host.input_devices().map(Iterator::collect), true),
        outputs: collect(host.output_devices().map(Iterator::collect), false),
        default_input: usable_default(host.default_input_device(), true),
        default_output: usable_default(host.default_output_device(), false),
    }
}

/// "2 ch, 48000 Hz, f32".
pub fn describe_config(config: &SupportedStreamConfig) -> String {
    format!(
        "{} ch, {} Hz, {}",
        config.channels(),
        config.sample_rate(),
        config.sample_format()
    )
}

/// Finds a device: `None` is the default one; otherwise a cpal device id (`alsa:default`) or,
/// failing that, a device name as [`list_devices`] shows it.
pub(crate) fn find_device(
    host: &cpal::Host,
    spec: Option<&str>,
    input: bool,
) -> Result<cpal::Device, AudioDeviceError> {
    let what = if input { "microphone" } else { "output device" };
    let Some(spec) = spec else {
        let device = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return device.ok_or_else(|| {
            AudioDeviceError::NoDevice(format!("this computer has no default {what}"))
        });
    };
    if let Ok(id) = spec.parse::<cpal::DeviceId>()
        && let Some(device) = host.device_by_id(&id)
    {
        return Ok(device);
    }
    host.devices()
        .ok()
        .and_then(|mut all| all.find(|d| d.description().is_ok_and(|desc| desc.name() == spec)))
        .ok_or_else(|| AudioDeviceError::NoDevice(format!("there is no {what} called '{spec}'")))
}

/// Turns a cpal error while querying or building into the matching plain-words error.
pub(crate) fn classify(err: &cpal::Error, device: &str, building: bool) -> AudioDeviceError {
    use cpal::ErrorKind as K;
    match err.kind() {
        K::DeviceNotAvailable | K::HostUnavailable => {
            AudioDeviceError::NoDevice(format!("'{device}' is not available right now ({err})"))
        }
        K::UnsupportedConfig | K::UnsupportedOperation | K::InvalidInput => {
            AudioDeviceError::UnsupportedConfig(format!("'{device}': {err}"))
        }
        _ if building => AudioDeviceError::StreamBuild(format!("'{device}': {err}")),
        _ => AudioDeviceError::NoDevice(format!("'{device}' cannot be used right now ({err})")),
    }
}

/// Expands to `$build::<T>(args...)` with the Rust sample type `T` of the cpal sample format,
/// or makes the enclosing function return [`AudioDeviceError::UnsupportedConfig`] for formats
/// Voxboard does not handle (DSD and future ones).
macro_rules! with_sample_type {
    ($format:expr, $build:ident, ($($arg:expr),* $(,)?)) => {
        match $format {
            cpal::SampleFormat::I8 => $build::<i8>($($arg),*),
            cpal::SampleFormat::I16 => $build::<i16>($($arg),*),
            cpal::SampleFormat::I24 => $build::<cpal::I24>($($arg),*),
            cpal::SampleFormat::I32 => $build::<i32>($($arg),*),
            cpal::SampleFormat::I64 => $build::<i64>($($arg),*),
            cpal::SampleFormat::U8 => $build::<u8>($($arg),*),
            cpal::SampleFormat::U16 => $build::<u16>($($arg),*),
            cpal::SampleFormat::U24 => $build::<cpal::U24>($($arg),*),
            cpal::SampleFormat::U32 => $build::<u32>($($arg),*),
            cpal::SampleFormat::U64 => $build::<u64>($($arg),*),
            cpal::SampleFormat::F32 => $build::<f32>($($arg),*),
            cpal::SampleFormat::F64 => $build::<f64>($($arg),*),
            other => {
                return Err($crate::devices::AudioDeviceError::UnsupportedConfig(format!(
                    "its sample format {other} is not supported"
                )))
            }
        }
    };
}
pub(crate) use with_sample_type;

/// Checks a device's default config against what the converters handle.
pub(crate) fn check_config(
    config: &SupportedStreamConfig,
    device: &str,
) -> Result<(), AudioDeviceError> {
    let rate = config.sample_rate();
    let channels = usize::from(config.channels());
    if !(super::resample::MIN_RATE..=super::resample::MAX_RATE).contains(&rate) {
        return Err(AudioDeviceError::UnsupportedConfig(format!(
            "'{device}' runs at {rate} Hz, which Voxboard does not support"
        )));
    }
    if channels == 0 || channels > MAX_DEVICE_CHANNELS {
        return Err(AudioDeviceError::UnsupportedConfig(format!(
            "'{device}' has {channels} channels (at most {MAX_DEVICE_CHANNELS} are supported)"
        )));
    }
    Ok(())
}

/// Largest f32 below 1.0: integer conversions treat +1.0 as out of range.
const BELOW_ONE: f32 = 1.0 - f32::EPSILON / 2.0;

/// One device sample as f32 in [-1, 1] (i16: x / 32768; u16: (x - 32768) / 32768; ...).
#[inline]
pub fn sample_to_f32<T>(sample: T) -> f32
where
    f32: FromSample<T>,
{
    f32::from_sample_(sample)
}

/// One f32 as a device sample, clipped to the format's range first (so +1.0 and louder
/// become the largest value instead of wrapping around).
#[inline]
pub fn f32_to_sample<T: FromSample<f32>>(value: f32) -> T {
    T::from_sample_(value.clamp(-1.0, BELOW_ONE))
}

/// Down-mixes one device frame of any width to stereo, with gains fixed when the stream is
/// built. Mono goes to both sides; wider layouts in WAVE order (FL, FR, FC, LFE, BL, BR, SL,
/// SR) fold the centre into both sides at -3 dB, drop the LFE, and fold rears and sides into
/// their own side at -3 dB; unknown layouts alternate left/right. Each side is normalised by
/// its gain sum, so a full-scale input stays within [-1, 1].
#[derive(Debug, Clone, Copy)]
pub struct ToStereo {
    channels: usize,
    gains: [(f32, f32); MAX_DEVICE_CHANNELS],
}

impl ToStereo {
    /// `None` for 0 or more than [`MAX_DEVICE_CHANNELS`] channels.
    pub fn new(channels: usize) -> Option<ToStereo> {
        if channels == 0 || channels > MAX_DEVICE_CHANNELS {
            return None;
        }
        // One layout table for files and devices: `resample::downmix_gains`.
        let mut gains = [(0.0, 0.0); MAX_DEVICE_CHANNELS];
        for (i, g) in gains.iter_mut().take(channels).enumerate() {
            *g = if channels == 1 {
                (1.0, 1.0)
            } else {
                crate::resample::downmix_gains(i, channels)
            };
        }
        if channels > 1 {
            let (l, r) = gains[..channels]
                .iter()
                .fold((0.0, 0.0), |(l, r), g| (l + g.0, r + g.1));
            for g in &mut gains[..channels] {
                *g = (g.0 / l.max(1e-6), g.1 / r.max(1e-6));
            }
        }
        Some(ToStereo { channels, gains })
    }

    /// Device channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// One device frame (exactly `channels` samples) as a stereo pair.
    #[inline]
    pub fn frame<T: Copy>(&self, frame: &[T]) -> [f32; 2]
    where
        f32: FromSample<T>,
    {
        let mut out = [0.0f32; 2];
        for (&s, g) in frame.iter().zip(&self.gains) {
            let x = sample_to_f32(s);
            out[0] += x * g.0;
            out[1] += x * g.1;
        }
        out
    }
}

/// Writes a stereo pair into one device frame: mono gets the average, stereo is copied, wider
/// devices get left and right on their first two channels and silence elsewhere.
#[inline]
pub fn stereo_to_device<T: FromSample<f32>>(pair: [f32; 2], frame: &mut [T]) {
    match frame {
        [] => {}
        [mono] => *mono = f32_to_sample((pair[0] + pair[1]) * 0.5),
        [l, r, rest @ ..] => {
            *l = f32_to_sample(pair[0]);
            *r = f32_to_sample(pair[1]);
            for s in rest {
                *s = f32_to_sample(0.0);
            }
        }
    }
}

/// A streaming stereo resampler for audio callbacks: cubic (Catmull-Rom) interpolation with
/// four frames of history, state carried across callbacks so chunk boundaries leave no seams.
/// Meant for real-time device audio between common rates (44.1/48/96 kHz). It has no
/// anti-alias filter, so downsampling folds content above the new Nyquist back; for voice at
/// these rates that is inaudible. Latency: two input frames.
#[derive(Debug, Clone)]
pub struct StreamResampler {
    /// Input frames per output frame.
    step: f64,
    /// Position of the next output between `hist[1]` (0.0) and `hist[2]` (1.0).
    pos: f64,
    hist: [[f32; 2]; 4],
}

impl StreamResampler {
    /// Converts from `from_rate` to `to_rate` (both non-zero).
    pub fn new(from_rate: u32, to_rate: u32) -> StreamResampler {
        StreamResampler {
            step: f64::from(from_rate.max(1)) / f64::from(to_rate.max(1)),
            pos: 0.0,
            hist: [[0.0; 2]; 4],
        }
    }

    /// Feeds one input frame; calls `emit` for each output frame it completes (zero, one or
    /// more, depending on the ratio).
    #[inline]
    pub fn push(&mut self, frame: [f32; 2], mut emit: impl FnMut([f32; 2])) {
        self.hist = [self.hist[1], self.hist[2], self.hist[3], frame];
        while self.pos < 1.0 {
            emit(self.interpolate());
            self.pos += self.step;
        }
        self.pos -= 1.0;
    }

    /// Produces one output frame, pulling input frames from `pull` as needed.
    #[inline]
    pub fn pull(&mut self, mut pull: impl FnMut() -> [f32; 2]) -> [f32; 2] {
        while self.pos >= 1.0 {
            self.hist = [self.hist[1], self.hist[2], self.hist[3], pull()];
            self.pos -= 1.0;
        }
        let out = self.interpolate();
        self.pos += self.step;
        out
    }

    #[inline]
    fn interpolate(&self) -> [f32; 2] {
        let t = self.pos as f32;
        let [p0, p1, p2, p3] = self.hist;
        let mut out = [0.0f32; 2];
        for (c, o) in out.iter_mut().enumerate() {
            let (a, b, c2, d) = (p0[c], p1[c], p2[c], p3[c]);
            // Catmull-Rom spline through b (t = 0) and c2 (t = 1).
            *o = b + 0.5
                * t
                * (c2 - a + t * (2.0 * a - 5.0 * b + 4.0 * c2 - d + t * (3.0 * (b - c2) + d - a)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{channel, dominant_frequency, max_step};

    #[test]
    fn integer_samples_convert_to_f32_and_back() {
        assert_eq!(sample_to_f32(0i16), 0.0);
        assert_eq!(sample_to_f32(i16::MIN), -1.0);
        assert_eq!(sample_to_f32(16384i16), 0.5);
        assert!((sample_to_f32(i16::MAX) - 1.0).abs() < 1e-4);
        assert_eq!(sample_to_f32(32768u16), 0.0);
        assert_eq!(sample_to_f32(0u16), -1.0);
        assert_eq!(sample_to_f32(49152u16), 0.5);
        assert_eq!(sample_to_f32(0.25f32), 0.25);
        assert_eq!(f32_to_sample::<i16>(0.5), 16384);
        assert_eq!(f32_to_sample::<u16>(0.0), 32768);
        // Out of range clips instead of wrapping.
        assert_eq!(f32_to_sample::<i16>(1.0), i16::MAX);
        assert_eq!(f32_to_sample::<i16>(7.0), i16::MAX);
        assert_eq!(f32_to_sample::<i16>(-3.0), i16::MIN);
        assert_eq!(f32_to_sample::<u16>(2.0), u16::MAX);
        assert_eq!(f32_to_sample::<i32>(1.0), i32::MAX - 127);
        for x in [-0.75f32, -0.1, 0.0, 0.3, 0.9] {
            assert!((sample_to_f32(f32_to_sample::<i16>(x)) - x).abs() < 1e-4);
            assert!((sample_to_f32(f32_to_sample::<u16>(x)) - x).abs() < 1e-4);
        }
    }

    #[test]
    fn channels_mix_up_and_down() {
        let mono = ToStereo::new(1).unwrap();
        assert_eq!(mono.frame(&[0.5f32]), [0.5, 0.5]);
        let stereo = ToStereo::new(2).unwrap();
        assert_eq!(stereo.frame(&[0.25f32, -0.5]), [0.25, -0.5]);
        assert_eq!(stereo.frame(&[16384i16, -16384]), [0.5, -0.5]);
        // 5.1: a signal only in FL stays left; full scale everywhere stays within range.
        let six = ToStereo::new(6).unwrap();
        let left_only = six.frame(&[1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(left_only[0] > 0.3 && left_only[1] == 0.0, "{left_only:?}");
        let full = six.frame(&[1.0f32; 6]);
        assert!(full.iter().all(|&s| (s - 1.0).abs() < 1e-5), "{full:?}");
        let quad = ToStereo::new(4).unwrap().frame(&[0.0f32, 0.0, 0.0, 1.0]);
        assert!(quad[0] == 0.0 && quad[1] > 0.0, "{quad:?}");
        assert!(ToStereo::new(0).is_none());
        assert!(ToStereo::new(MAX_DEVICE_CHANNELS + 1).is_none());

        let mut one = [0i16; 1];
        stereo_to_device([0.5, 0.0], &mut one);
        assert_eq!(one, [8192]);
        let mut two = [0f32; 2];
        stereo_to_device([0.5, -0.5], &mut two);
        assert_eq!(two, [0.5, -0.5]);
        let mut six_out = [1u16; 6];
        stereo_to_device([0.5, -0.5], &mut six_out);
        assert_eq!(six_out, [49152, 16384, 32768, 32768, 32768, 32768]);
    }

    fn sine(freq: f64, rate: u32, frames: usize) -> Vec<[f32; 2]> {
        (0..frames)
            .map(|i| {
                let s = (0.5
                    * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32;
                [s, -s]
            })
            .collect()
    }

    #[test]
    fn streaming_resampler_keeps_pitch_without_clicks_across_chunks() {
        let input = sine(1000.0, 44_100, 44_100 * 2);
        let mut rs = StreamResampler::new(44_100, 48_000);
        let mut out = Vec::new();
        // Callback-sized chunks of varying length, as devices deliver them.
        let mut rest = &input[..];
        for len in [441usize, 512, 1024, 7, 940].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*len).min(rest.len()));
            for &f in chunk {
                rs.push(f, |o| out.extend_from_slice(&o));
            }
            rest = tail;
        }
        let frames = out.len() / 2;
        assert!((frames as i64 - 96_000).abs() <= 2, "{frames} frames");
        let left = channel(&out, 2, 0);
        let right = channel(&out, 2, 1);
        let f = dominant_frequency(&left[4800..], 48_000, 100.0, 5000.0);
        assert!((f - 1000.0).abs() <= 1.0, "left at {f} Hz");
        let f = dominant_frequency(&right[4800..], 48_000, 100.0, 5000.0);
        assert!((f - 1000.0).abs() <= 1.0, "right at {f} Hz");
        // A 0.5-amplitude 1 kHz sine moves at most 2π·1000·0.5/48000 ≈ 0.065 per sample.
        let step = max_step(&left[4..]);
        assert!(step < 0.07, "click: step {step}");
        let peak = crate::analysis::peak(&left[4800..]);
        assert!((peak - 0.5).abs() < 0.01, "level {peak}");
    }

    #[test]
    fn streaming_resampler_pulls_for_output_devices() {
        // 48 kHz → 44.1 kHz, the monitor's direction.
        let input = sine(1000.0, 48_000, 96_000);
        let mut it = input.iter().copied();
        let mut rs = StreamResampler::new(48_000, 44_100);
        let out: Vec<f32> = (0..88_000)
            .flat_map(|_| rs.pull(|| it.next().unwrap_or([0.0; 2])))
            .collect();
        let left = channel(&out, 2, 0);
        let f = dominant_frequency(&left[4410..], 44_100, 100.0, 5000.0);
        assert!((f - 1000.0).abs() <= 1.0, "{f} Hz");
        assert!(max_step(&left[4..]) < 0.08);
    }

    #[test]
    fn same_rate_passes_samples_through() {
        let input = sine(440.0, 48_000, 1000);
        let mut rs = StreamResampler::new(48_000, 48_000);
        let mut out = Vec::new();
        for &f in &input {
            rs.push(f, |o| out.push(o));
        }
        assert_eq!(out.len(), input.len());
        // Two frames of latency, otherwise identical.
        assert_eq!(&out[2..], &input[..input.len() - 2]);
    }
}
