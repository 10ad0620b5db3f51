//! The local monitor: plays what goes out to Discord on the user's own output device, at its
//! own volume, so the streamer hears the board.
//!
//! The engine pushes 48 kHz stereo frames through a lock-free SPSC ring buffer
//! ([`MonitorWriter::push_frame`], non-blocking, drops the frame when full). The cpal output
//! callback pulls from the ring and converts to the device's rate, channel count and sample
//! format in place. It allocates nothing (ring, resampler state and channel count are set up in
//! [`Monitor::open`] and moved into the closure), takes no lock (ringbuf and atomics only) and
//! logs nothing. When the ring runs dry the device gets silence; when more than
//! [`MAX_LATENCY_MS`] beyond one callback's worth is waiting, the oldest is skipped so the
//! monitor never lags behind what is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use super::capture::{
    MicStatus, StallWatch, StreamShared, on_stream_error, release_in_background, status_of,
};
use super::devices::{
    AudioDeviceError, StreamResampler, check_config, classify, describe_config, find_device,
    stereo_to_device, with_sample_type,
};
use super::{CHANNELS, SAMPLE_RATE};

/// Most audio (in ms, beyond one device callback) allowed to wait before the oldest is skipped.
pub const MAX_LATENCY_MS: usize = 100;
const MAX_LATENCY: usize = SAMPLE_RATE as usize * CHANNELS * MAX_LATENCY_MS / 1000;
/// Ring size: a quarter of a second.
const RING_CAPACITY: usize = SAMPLE_RATE as usize * CHANNELS / 4;
/// Loudest volume accepted (+12 dB).
pub const MAX_VOLUME: f32 = 4.0;

#[derive(Default)]
struct MonitorShared {
    stream: StreamShared,
    /// f32 bits.
    volume: AtomicU32,
    /// Callbacks that ran out of audio and filled (part of) their buffer with silence.
    underruns: AtomicU64,
}

impl MonitorShared {
    fn set_volume(&self, volume: f32) {
        let v = if volume.is_finite() {
            volume.clamp(0.0, MAX_VOLUME)
        } else {
            0.0
        };
        self.volume.store(v.to_bits(), Ordering::Relaxed);
    }
}

/// An open monitor output. Keep it alive (it owns the cpal stream) and hand its
/// [`MonitorWriter`] to the engine. Poll [`Monitor::check`] to notice a lost output; a lost
/// monitor is replaced by opening a new one.
pub struct Monitor {
    name: String,
    config: String,
    /// None only while dropping.
    stream: Option<cpal::Stream>,
    shared: Arc<MonitorShared>,
    writer: Option<MonitorWriter>,
    stall: StallWatch,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("device", &self.name)
            .field("config", &self.config)
            .field("volume", &self.volume())
            .finish()
    }
}

impl Monitor {
    /// Starts playing on `device` (a cpal id such as `alsa:default` or a device name from
    /// [`crate::devices::list_devices`]; `None` = the default output), at volume 1.
    pub fn open(device: Option<&str>) -> Result<Monitor, AudioDeviceError> {
        let host = cpal::default_host();
        let device_handle = find_device(&host, device, false)?;
        let name = device_handle
            .description()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|_| device.unwrap_or("default output").to_string());
        let supported = device_handle
            .default_output_config()
            .map_err(|e| classify(&e, &name, false))?;
        check_config(&supported, &name)?;
        let shared = Arc::new(MonitorShared::default());
        shared.set_volume(1.0);
        let (prod, cons) = HeapRb::<f32>::new(RING_CAPACITY).split();
        let stream = with_sample_type!(
            supported.sample_format(),
            build,
            (&device_handle, supported.config(), cons, shared.clone())
        )
        .map_err(|e| classify(&e, &name, true))?;
        stream.play().map_err(|e| classify(&e, &name, true))?;
        let writer = MonitorWriter {
            prod,
            shared: shared.clone(),
            dropped: 0,
        };
        Ok(Monitor {
            name,
            config: describe_config(&supported),
            stream: Some(stream),
            shared,
            writer: Some(writer),
            stall: StallWatch::new(),
        })
    }

    /// The producer side for the engine; `None` once taken.
    pub fn take_writer(&mut self) -> Option<MonitorWriter> {
        self.writer.take()
    }

    /// Monitor volume: 0 = mute, 1 = as sent, up to [`MAX_VOLUME`]. Takes effect at the next
    /// device callback.
    pub fn set_volume(&self, volume: f32) {
        self.shared.set_volume(volume);
    }

    pub fn volume(&self) -> f32 {
        f32::from_bits(self.shared.volume.load(Ordering::Relaxed))
    }

    /// Running, or lost (device gone, audio system stopped). Open a new monitor to retry.
    pub fn status(&self) -> MicStatus {
        status_of(&self.shared.stream)
    }

    /// Like [`Monitor::status`], and first marks the output lost if its callbacks stopped for
    /// [`super::capture::STALL_TIMEOUT`] (a dead PulseAudio daemon reports no error at all).
    pub fn check(&mut self) -> MicStatus {
        if self.stall.check(&self.shared.stream, "playing audio") {
            tracing::warn!("monitor output stopped playing audio");
        }
        self.status()
    }

    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// The device's own format, in words ("2 ch, 48000 Hz, f32").
    pub fn device_config(&self) -> &str {
        &self.config
    }

    /// Stream errors reported by cpal since the monitor was opened.
    pub fn stream_errors(&self) -> u64 {
        self.shared.stream.errors.load(Ordering::Relaxed)
    }

    /// Device callbacks that ran out of audio (played silence).
    pub fn underruns(&self) -> u64 {
        self.shared.underruns.load(Ordering::Relaxed)
    }

    /// Device callbacks so far.
    pub fn callbacks(&self) -> u64 {
        self.shared.stream.callbacks.load(Ordering::Relaxed)
    }
}

impl Drop for Monitor {
    /// Never blocks: with the PulseAudio daemon dead, dropping a cpal ALSA stream blocks forever
    /// (its worker never wakes up), and this runs on the thread that watches the devices.
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            let lost = matches!(self.check(), MicStatus::Lost { .. });
            release_in_background(stream, lost);
        }
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut cons: HeapCons<f32>,
    shared: Arc<MonitorShared>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels);
    let rate = config.sample_rate;
    let mut resampler = StreamResampler::new(SAMPLE_RATE, rate);
    let err_shared = shared.clone();
    // Everything the closure uses was created above; nothing below allocates, locks or logs.
    let data = move |out: &mut [T], _: &cpal::OutputCallbackInfo| {
        let volume = f32::from_bits(shared.volume.load(Ordering::Relaxed));
        // 48 kHz values this callback will consume, plus the allowed backlog.
        let frames = out.len() / channels.max(1);
        let needed = (frames as u64 * u64::from(SAMPLE_RATE) / u64::from(rate.max(1))) as usize;
        let limit = needed * CHANNELS + MAX_LATENCY;
        let held = cons.occupied_len();
        if held > limit {
            cons.skip((held - limit) & !1);
        }
        let mut starved = false;
        for frame in out.chunks_exact_mut(channels) {
            let pair = resampler.pull(|| {
                let mut pair = [0.0f32; 2];
                if cons.pop_slice(&mut pair) < 2 {
                    starved = true; // underrun: silence
                }
                pair
            });
            stereo_to_device([pair[0] * volume, pair[1] * volume], frame);
        }
        shared.stream.callbacks.fetch_add(1, Ordering::Relaxed);
        if starved {
            shared.underruns.fetch_add(1, Ordering::Relaxed);
        }
    };
    let error = move |err: cpal::Error| on_stream_error(&err_shared.stream, &err);
    device.build_output_stream::<T, _, _>(config, data, error, None)
}

/// The engine's end of the monitor.
pub struct MonitorWriter {
    prod: HeapProd<f32>,
    shared: Arc<MonitorShared>,
    dropped: u64,
}

impl std::fmt::Debug for MonitorWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorWriter")
            .field("queued", &self.prod.occupied_len())
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl MonitorWriter {
    /// Queues interleaved 48 kHz stereo audio (normally one 20 ms frame). Never blocks:
    /// returns false and drops the whole frame when it does not fit (or has an odd length).
    pub fn push_frame(&mut self, frame: &[f32]) -> bool {
        if !frame.len().is_multiple_of(CHANNELS) || self.prod.vacant_len() < frame.len() {
            self.dropped += 1;
            return false;
        }
        self.prod.push_slice(frame);
        true
    }

    /// Same as [`Monitor::set_volume`], from the engine's side.
    pub fn set_volume(&self, volume: f32) {
        self.shared.set_volume(volume);
    }

    /// Values waiting for the device.
    pub fn queued(&self) -> usize {
        self.prod.occupied_len()
    }

    /// Frames dropped because the device was not taking them fast enough.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (MonitorWriter, HeapCons<f32>) {
        let (prod, cons) = HeapRb::<f32>::new(RING_CAPACITY).split();
        let shared = Arc::new(MonitorShared::default());
        let w = MonitorWriter {
            prod,
            shared,
            dropped: 0,
        };
        (w, cons)
    }

    #[test]
    fn push_drops_whole_frames_when_full() {
        let (mut w, mut cons) = writer();
        let frame = [0.5f32; super::super::FRAME_LEN];
        let fits = RING_CAPACITY / frame.len();
        for _ in 0..fits {
            assert!(w.push_frame(&frame));
        }
        assert!(!w.push_frame(&frame), "ring is full");
        assert!(!w.push_frame(&[0.1; 3]), "odd length");
        assert_eq!(w.dropped_frames(), 2);
        assert_eq!(w.queued(), fits * frame.len());
        cons.skip(frame.len());
        assert!(w.push_frame(&frame));
    }

    #[test]
    fn volume_is_clamped() {
        let shared = MonitorShared::default();
        for (set, got) in [(0.5, 0.5), (-1.0, 0.0), (9.0, MAX_VOLUME), (f32::NAN, 0.0)] {
            shared.set_volume(set);
            assert_eq!(f32::from_bits(shared.volume.load(Ordering::Relaxed)), got);
        }
    }
}
