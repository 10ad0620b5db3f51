//! Microphone capture: any cpal input device, in any sample format, rate and channel count,
//! delivered to the engine as 48 kHz stereo f32 through a lock-free SPSC ring buffer.
//!
//! The cpal data callback only converts and pushes. It allocates nothing (the ring buffer,
//! the channel gains and the resampler state are built in [`Microphone::open`] and moved into
//! the closure; the scratch buffer is a fixed array on the stack), takes no lock (ringbuf's
//! producer and the status counters are atomics) and logs nothing. The error callback only
//! bumps atomic counters; [`MicReader::read_frame`] turns them into rate-limited log lines on
//! the engine thread.
//!
//! Latency stays low because the consumer drops the oldest samples whenever more than
//! [`MAX_LATENCY_MS`] are waiting (or one device burst plus a frame, if the device delivers in
//! larger blocks), so the microphone never drifts behind the board.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use super::analysis::peak;
use super::devices::{
    AudioDeviceError, StreamResampler, ToStereo, check_config, classify, describe_config,
    find_device, with_sample_type,
};
use super::{CHANNELS, FRAME_LEN, SAMPLE_RATE};

/// Most audio (in ms) allowed to wait in the ring before the oldest is dropped.
pub const MAX_LATENCY_MS: usize = 60;
const MAX_LATENCY: usize = SAMPLE_RATE as usize * CHANNELS * MAX_LATENCY_MS / 1000;
/// Ring size: half a second, so a slow tick never makes the callback drop fresh audio.
const RING_CAPACITY: usize = SAMPLE_RATE as usize * CHANNELS / 2;
/// Values converted in one go before they are pushed (stack array in the callback).
const SCRATCH: usize = 512;
/// At most one log line about stream errors per this long.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// A stream whose callbacks stop for this long counts as lost. (When the PulseAudio daemon
/// dies, ALSA's pulse plugin just stops calling back, with no error at all.)
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What the microphone is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicStatus {
    /// The stream runs (data may still be on its way: PulseAudio can take ~2 s to start).
    Running,
    /// The stream stopped for good; [`Microphone::reopen`] retries.
    Lost { reason: String },
    /// The last (re)open found no device.
    NoDevice,
}

const RUNNING: u8 = 0;
const LOST: u8 = 1;
const NO_DEVICE: u8 = 2;

/// State shared by the stream callbacks, [`Microphone`] and [`MicReader`]. The callbacks touch
/// only the atomics; the mutexes are for the control side.
#[derive(Default)]
pub(crate) struct StreamShared {
    state: AtomicU8,
    /// cpal error kind (see [`kind_code`]) that stopped the stream.
    lost_kind: AtomicU8,
    pub(crate) errors: AtomicU64,
    pub(crate) callbacks: AtomicU64,
    /// Samples the callback could not push because the ring was full.
    overflow: AtomicUsize,
    /// Most 48 kHz samples one callback produced.
    burst: AtomicUsize,
    /// Bumped when [`Microphone::reopen`] leaves a new consumer in `handoff`.
    generation: AtomicU64,
    handoff: Mutex<Option<HeapCons<f32>>>,
    /// Why a reopen failed (control side only).
    reason: Mutex<String>,
}

/// The error callback: counts, and marks the stream lost when cpal says it cannot go on.
/// Atomics only (the `cpal::Error` was built, and is dropped, by cpal).
pub(crate) fn on_stream_error(shared: &StreamShared, err: &cpal::Error) {
    use cpal::ErrorKind as K;
    shared.errors.fetch_add(1, Ordering::Relaxed);
    if matches!(
        err.kind(),
        K::DeviceNotAvailable | K::HostUnavailable | K::StreamInvalidated
    ) {
        shared
            .lost_kind
            .store(kind_code(err.kind()), Ordering::Relaxed);
        shared.state.store(LOST, Ordering::Release);
    }
}

impl StreamShared {
    /// Marks a running stream lost because its callbacks stopped; false if it was not running.
    fn mark_stalled(&self, what: &str) -> bool {
        if self.state.load(Ordering::Acquire) != RUNNING {
            return false;
        }
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) =
            format!("the device stopped {what}");
        self.lost_kind.store(0, Ordering::Relaxed);
        self.state.store(LOST, Ordering::Release);
        true
    }
}

/// Notices a stream whose callbacks stopped for [`STALL_TIMEOUT`], once it has started
/// (PulseAudio can take ~2 s to deliver the first block). Polled from the control side.
pub(crate) struct StallWatch {
    /// Callback count at `progress_at`.
    seen: u64,
    progress_at: Instant,
}

impl StallWatch {
    pub(crate) fn new() -> StallWatch {
        StallWatch {
            seen: 0,
            progress_at: Instant::now(),
        }
    }

    /// Marks the stream lost if it stalled ("the device stopped {what}"); true when it just did.
    pub(crate) fn check(&mut self, shared: &StreamShared, what: &str) -> bool {
        let callbacks = shared.callbacks.load(Ordering::Relaxed);
        if callbacks != self.seen {
            self.seen = callbacks;
            self.progress_at = Instant::now();
            false
        } else {
            callbacks > 0 && self.progress_at.elapsed() > STALL_TIMEOUT && shared.mark_stalled(what)
        }
    }
}

fn kind_code(kind: cpal::ErrorKind) -> u8 {
    use cpal::ErrorKind as K;
    match kind {
        K::DeviceNotAvailable => 1,
        K::HostUnavailable => 2,
        K::StreamInvalidated => 3,
        _ => 0,
    }
}

pub(crate) fn status_of(shared: &StreamShared) -> MicStatus {
    match shared.state.load(Ordering::Acquire) {
        RUNNING => MicStatus::Running,
        NO_DEVICE => MicStatus::NoDevice,
        _ => {
            let reason = match shared.lost_kind.load(Ordering::Relaxed) {
                1 => "the device was disconnected".to_string(),
                2 => "the audio system stopped".to_string(),
                3 => "the device changed its format".to_string(),
                _ => shared
                    .reason
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            };
            MicStatus::Lost { reason }
        }
    }
}

/// An open microphone. Keep it alive (it owns the cpal stream) and hand its [`MicReader`] to
/// the engine.
pub struct Microphone {
    spec: Option<String>,
    name: String,
    config: String,
    stream: Option<cpal::Stream>,
    shared: Arc<StreamShared>,
    reader: Option<MicReader>,
    /// The control side's own stall watch: the engine reads (and watches) only while it uses
    /// the microphone.
    stall: StallWatch,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("device", &self.name)
            .field("config", &self.config)
            .field("status", &self.status())
            .finish()
    }
}

impl Microphone {
    /// Starts capturing from `device` (a cpal id such as `alsa:default` or a device name from
    /// [`crate::devices::list_devices`]; `None` = the default input).
    pub fn open(device: Option<&str>) -> Result<Microphone, AudioDeviceError> {
        let shared = Arc::new(StreamShared::default());
        let (stream, cons, name, config) = start(device, &shared)?;
        let reader = MicReader::new(cons, shared.clone());
        Ok(Microphone {
            spec: device.map(str::to_string),
            name,
            config,
            stream: Some(stream),
            shared,
            reader: Some(reader),
            stall: StallWatch::new(),
        })
    }

    /// The consumer side for the engine; `None` once taken.
    pub fn take_reader(&mut self) -> Option<MicReader> {
        self.reader.take()
    }

    /// Stops the stream and opens the same device again (after a loss, or to pick up a new
    /// default). The existing [`MicReader`] switches to the new stream on its next read.
    pub fn reopen(&mut self) -> Result<(), AudioDeviceError> {
        self.release_stream(); // stop the old callback before a new one starts
        // Stall detection waits for the first callback of the new stream.
        self.shared.callbacks.store(0, Ordering::Relaxed);
        match start(self.spec.as_deref(), &self.shared) {
            Ok((stream, cons, name, config)) => {
                (self.name, self.config) = (name, config);
                self.stream = Some(stream);
                match &mut self.reader {
                    Some(reader) => reader.cons = Some(cons),
                    None => {
                        *self
                            .shared
                            .handoff
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(cons);
                        self.shared.generation.fetch_add(1, Ordering::Release);
                    }
                }
                self.shared.lost_kind.store(0, Ordering::Relaxed);
                self.shared.state.store(RUNNING, Ordering::Release);
                Ok(())
            }
            Err(err) => {
                let state = if matches!(err, AudioDeviceError::NoDevice(_)) {
                    NO_DEVICE
                } else {
                    LOST
                };
                *self
                    .shared
                    .reason
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = err.to_string();
                self.shared.lost_kind.store(0, Ordering::Relaxed);
                self.shared.state.store(state, Ordering::Release);
                Err(err)
            }
        }
    }

    pub fn status(&self) -> MicStatus {
        status_of(&self.shared)
    }

    /// Like [`Microphone::status`], and first marks the stream lost if its callbacks stopped
    /// for [`STALL_TIMEOUT`] (a dead PulseAudio daemon reports no error at all).
    pub fn check(&mut self) -> MicStatus {
        if self.stall.check(&self.shared, "delivering audio") {
            tracing::warn!("microphone stopped delivering audio");
        }
        self.status()
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// The device's own format, in words ("2 ch, 44100 Hz, i16").
    pub fn device_config(&self) -> &str {
        &self.config
    }

    /// Stream errors reported by cpal since the microphone was opened.
    pub fn stream_errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }
}

impl Microphone {
    /// Stops and drops the stream before a reopen (the old callback must stop before the new
    /// one starts), except a lost one: when the PulseAudio daemon has died, dropping a cpal ALSA
    /// stream blocks forever (its worker never wakes up), so a lost stream is leaked instead
    /// (one idle thread and its buffers).
    fn release_stream(&mut self) {
        if let Some(stream) = self.stream.take()
            && matches!(self.status(), MicStatus::Lost { .. })
        {
            std::mem::forget(stream);
        }
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            let lost = matches!(self.status(), MicStatus::Lost { .. });
            release_in_background(stream, lost);
        }
    }
}

/// Drops a stream without blocking the caller: a lost one is leaked (see
/// [`Microphone::release_stream`]), a running one is dropped on a short-lived thread of its own,
/// so a sound server that died a moment ago (not yet noticed as a stall) cannot hang the
/// device thread either.
pub(crate) fn release_in_background(stream: cpal::Stream, lost: bool) {
    if lost {
        std::mem::forget(stream);
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("audio-stream-release".into())
        .spawn(move || drop(stream));
    if let Err(e) = spawned {
        tracing::warn!("could not start a thread to close an audio stream: {e}");
    }
}

type Started = (cpal::Stream, HeapCons<f32>, String, String);

/// Finds the device, checks its default config and starts a stream feeding a new ring.
fn start(spec: Option<&str>, shared: &Arc<StreamShared>) -> Result<Started, AudioDeviceError> {
    let host = cpal::default_host();
    let device = find_device(&host, spec, true)?;
    let name = device
        .description()
        .map(|d| d.name().to_string())
        .unwrap_or_else(|_| spec.unwrap_or("default microphone").to_string());
    let supported = device
        .default_input_config()
        .map_err(|e| classify(&e, &name, false))?;
    check_config(&supported, &name)?;
    let to_stereo = ToStereo::new(usize::from(supported.channels()))
        .ok_or_else(|| AudioDeviceError::UnsupportedConfig(format!("'{name}' has no channels")))?;
    let (prod, cons) = HeapRb::<f32>::new(RING_CAPACITY).split();
    let resampler = StreamResampler::new(supported.sample_rate(), SAMPLE_RATE);
    let stream = with_sample_type!(
        supported.sample_format(),
        build,
        (
            &device,
            supported.config(),
            prod,
            shared.clone(),
            to_stereo,
            resampler
        )
    )
    .map_err(|e| classify(&e, &name, true))?;
    stream.play().map_err(|e| classify(&e, &name, true))?;
    shared.state.store(RUNNING, Ordering::Release);
    Ok((stream, cons, name, describe_config(&supported)))
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut prod: HeapProd<f32>,
    shared: Arc<StreamShared>,
    to_stereo: ToStereo,
    mut resampler: StreamResampler,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let err_shared = shared.clone();
    let channels = to_stereo.channels();
    // Everything the closure uses was created above; nothing below allocates, locks or logs.
    let data = move |input: &[T], _: &cpal::InputCallbackInfo| {
        let mut scratch = [0.0f32; SCRATCH];
        let (mut filled, mut produced, mut dropped) = (0usize, 0usize, 0usize);
        for frame in input.chunks_exact(channels) {
            resampler.push(to_stereo.frame(frame), |pair| {
                scratch[filled] = pair[0];
                scratch[filled + 1] = pair[1];
                filled += 2;
                if filled == SCRATCH {
                    // Whole frames only: capacity and every push/pop are even.
                    dropped += SCRATCH - prod.push_slice(&scratch);
                    produced += SCRATCH;
                    filled = 0;
                }
            });
        }
        dropped += filled - prod.push_slice(&scratch[..filled]);
        produced += filled;
        shared.callbacks.fetch_add(1, Ordering::Relaxed);
        shared.burst.fetch_max(produced, Ordering::Relaxed);
        if dropped > 0 {
            shared.overflow.fetch_add(dropped, Ordering::Relaxed);
        }
    };
    let error = move |err: cpal::Error| on_stream_error(&err_shared, &err);
    device.build_input_stream::<T, _, _>(config, data, error, None)
}

/// The engine's end of the microphone: 20 ms frames at 48 kHz stereo, never blocking.
pub struct MicReader {
    cons: Option<HeapCons<f32>>,
    shared: Arc<StreamShared>,
    generation: u64,
    level: f32,
    underruns: u64,
    dropped: u64,
    errors_logged: u64,
    last_log: Option<Instant>,
    stall: StallWatch,
}

impl std::fmt::Debug for MicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicReader")
            .field("available", &self.available())
            .field("level", &self.level)
            .field("underruns", &self.underruns)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl MicReader {
    fn new(cons: HeapCons<f32>, shared: Arc<StreamShared>) -> MicReader {
        MicReader {
            cons: Some(cons),
            shared,
            generation: 0,
            level: 0.0,
            underruns: 0,
            dropped: 0,
            errors_logged: 0,
            last_log: None,
            stall: StallWatch::new(),
        }
    }

    /// Fills `out` with the next 20 ms (interleaved stereo) and returns true, or returns false
    /// without touching `out` when less than a frame has arrived (underrun). First drops the
    /// oldest audio beyond the latency limit.
    pub fn read_frame(&mut self, out: &mut [f32; FRAME_LEN]) -> bool {
        self.adopt_reopened_stream();
        self.log_errors();
        self.detect_stall();
        let limit = MAX_LATENCY.max(self.shared.burst.load(Ordering::Relaxed) + FRAME_LEN);
        let Some(cons) = self.cons.as_mut() else {
            self.level = 0.0;
            return false;
        };
        let held = cons.occupied_len();
        if held > limit {
            self.dropped += cons.skip((held - limit) & !1) as u64;
        }
        if cons.occupied_len() < FRAME_LEN {
            self.underruns += 1;
            self.level = 0.0;
            return false;
        }
        cons.pop_slice(out);
        self.level = peak(out);
        true
    }

    /// Peak level (0..=1) of the last frame read; 0 after an underrun.
    pub fn level(&self) -> f32 {
        self.level
    }

    pub fn status(&self) -> MicStatus {
        status_of(&self.shared)
    }

    /// Samples (interleaved values) waiting to be read.
    pub fn available(&self) -> usize {
        self.cons.as_ref().map_or(0, |c| c.occupied_len())
    }

    /// How many device callbacks have delivered audio since the last (re)open.
    pub fn callbacks(&self) -> u64 {
        self.shared.callbacks.load(Ordering::Relaxed)
    }

    /// Reads that found less than a frame.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Samples dropped to keep latency low, plus those the callback could not fit.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped + self.shared.overflow.load(Ordering::Relaxed) as u64
    }

    /// Marks a running stream lost once its callbacks have stopped for [`STALL_TIMEOUT`]
    /// (only after it has started: PulseAudio can take ~2 s to deliver the first block).
    fn detect_stall(&mut self) {
        if self.stall.check(&self.shared, "delivering audio") {
            tracing::warn!("microphone stopped delivering audio");
        }
    }

    /// Picks up the consumer left by [`Microphone::reopen`]. `try_lock`: never waits.
    fn adopt_reopened_stream(&mut self) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation == self.generation {
            return;
        }
        if let Ok(mut slot) = self.shared.handoff.try_lock()
            && let Some(cons) = slot.take()
        {
            self.cons = Some(cons);
            self.generation = generation;
        }
    }

    /// Stream errors are counted by the callback and reported here, at most once per
    /// [`ERROR_LOG_INTERVAL`] (a suspended PulseAudio sink can cause thousands per second).
    fn log_errors(&mut self) {
        let errors = self.shared.errors.load(Ordering::Relaxed);
        if errors == self.errors_logged
            || self
                .last_log
                .is_some_and(|t| t.elapsed() < ERROR_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            new_errors = errors - self.errors_logged,
            total = errors,
            status = ?self.status(),
            "microphone stream errors"
        );
        self.errors_logged = errors;
        self.last_log = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_with(samples: &[f32]) -> (MicReader, HeapProd<f32>) {
        let (mut prod, cons) = HeapRb::<f32>::new(RING_CAPACITY).split();
        prod.push_slice(samples);
        (MicReader::new(cons, Arc::default()), prod)
    }

    #[test]
    fn reads_whole_frames_and_reports_underruns() {
        let (mut reader, mut prod) = reader_with(&[0.25; FRAME_LEN + 10]);
        let mut out = [0.0; FRAME_LEN];
        assert!(reader.read_frame(&mut out));
        assert!(out.iter().all(|&s| s == 0.25));
        assert_eq!(reader.level(), 0.25);
        assert!(!reader.read_frame(&mut out), "10 samples are not a frame");
        assert_eq!((reader.underruns(), reader.level()), (1, 0.0));
        prod.push_slice(&[-0.5; FRAME_LEN]);
        assert!(reader.read_frame(&mut out));
        assert_eq!(reader.level(), 0.5);
        assert_eq!(reader.available(), 10);
    }

    #[test]
    fn drops_the_oldest_audio_beyond_the_latency_limit() {
        // 200 ms waiting: oldest 150 ms are stale, newest are fresh.
        let stale = vec![0.1f32; MAX_LATENCY * 3];
        let (mut reader, mut prod) = reader_with(&stale);
        prod.push_slice(&vec![0.9f32; MAX_LATENCY]);
        let mut out = [0.0; FRAME_LEN];
        assert!(reader.read_frame(&mut out));
        assert!(out.iter().all(|&s| s == 0.9), "read stale audio");
        assert_eq!(reader.dropped_samples(), (MAX_LATENCY * 3) as u64);
        assert!(reader.available() <= MAX_LATENCY);
    }

    #[test]
    fn error_callback_counts_and_marks_loss() {
        let shared = StreamShared::default();
        on_stream_error(&shared, &cpal::ErrorKind::Xrun.into());
        assert_eq!(status_of(&shared), MicStatus::Running);
        assert_eq!(shared.errors.load(Ordering::Relaxed), 1);
        on_stream_error(&shared, &cpal::ErrorKind::DeviceNotAvailable.into());
        assert_eq!(
            status_of(&shared),
            MicStatus::Lost {
                reason: "the device was disconnected".into()
            }
        );
        shared.state.store(NO_DEVICE, Ordering::Release);
        assert_eq!(status_of(&shared), MicStatus::NoDevice);
    }
}
