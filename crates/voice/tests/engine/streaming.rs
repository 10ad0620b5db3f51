//! Long clips streamed from disk through the engine: heard whole and in order (through the
//! simulator, and for ten minutes through the mix on a fake clock), stopped mid-stream,
//! trimmed, and cut short by a file truncated under them.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxboard_audio::shaping::Shape;
use voxboard_audio::stream::{LongClip, Source};
use voxboard_sim::{SimConfig, Simulator};
use voxboard_voice::engine::mix::{Exclusive, MonitorSink};
use voxboard_voice::engine::{Command, EngineCore, EngineMsg, PlayRequest, Settings, Target};

use crate::common::*;

/// Frames per block of the position signal (see [`expected`]).
const BLOCK: usize = 4_800;

/// The position signal: frame `i`'s left sample names its 0.1 s block, its right sample its
/// place in the block, so every frame of ten minutes is distinct and a lost, repeated or
/// reordered frame shows. Both stay well inside (0, 1): silence (an underrun) is never data.
fn level(i: usize) -> (i16, i16) {
    let q = |x: f64| (x * 32767.0).round() as i16;
    let l = 0.1 + 0.8 * (i / BLOCK) as f64 / 6_000.0;
    let r = 0.1 + 0.8 * (i % BLOCK) as f64 / BLOCK as f64;
    (q(l), q(r))
}

/// Frame `i` as the decoder gives it back.
fn expected(i: usize) -> (f32, f32) {
    let (l, r) = level(i);
    (f32::from(l) / 32768.0, f32::from(r) / 32768.0)
}

/// Writes `frames` of the position signal as 48 kHz stereo 16-bit wav.
fn position_wav(path: &Path, frames: usize) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for i in 0..frames {
        let (l, r) = level(i);
        w.write_sample(l).expect("write");
        w.write_sample(r).expect("write");
    }
    w.finalize().expect("finalize wav");
}

fn long_clip(path: &Path, frames: usize) -> Source {
    Source::Stream(Arc::new(LongClip {
        path: path.to_path_buf(),
        frames,
    }))
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<f32>>>);

impl MonitorSink for Capture {
    fn push_frame(&mut self, frame: &[f32]) -> bool {
        self.0.lock().unwrap().extend_from_slice(frame);
        true
    }
}

/// The engine on a fake clock with only the monitor output: what it writes there is exactly
/// the mix.
struct Rig {
    core: EngineCore,
    now: Instant,
    capture: Capture,
}

impl Rig {
    fn new() -> Self {
        let now = Instant::now();
        let mut core = EngineCore::new(Settings::default(), None, now);
        let capture = Capture::default();
        core.push(EngineMsg::Command(Command::SetMonitorSink(Some(
            Exclusive::new(Box::new(capture.clone())),
        ))));
        Rig { core, now, capture }
    }

    /// Plays `source` on the monitor; the receiver fires when it has ended.
    fn play(&mut self, id: u64, source: Source, shape: Shape) -> std::sync::mpsc::Receiver<()> {
        self.play_at(id, source, shape, 1.0)
    }

    fn play_at(
        &mut self,
        id: u64,
        source: Source,
        shape: Shape,
        gain: f32,
    ) -> std::sync::mpsc::Receiver<()> {
        let (done, ended) = channel();
        let mut r = PlayRequest::new(id, source, Target::Monitor);
        r.shape = shape;
        r.gain = gain;
        r.done = Some(done);
        self.core.push(EngineMsg::Command(Command::Play(r)));
        ended
    }

    /// Runs `n` ticks; returns the interleaved samples they wrote to the monitor.
    fn ticks(&mut self, n: usize) -> Vec<f32> {
        for _ in 0..n {
            self.now += Duration::from_millis(20);
            self.core.tick(self.now);
        }
        std::mem::take(&mut *self.capture.0.lock().unwrap())
    }
}

/// Checks interleaved output against the position signal from frame `next` on, skipping
/// silent frames (underruns); returns the next expected frame.
fn check_in_order(out: &[f32], next: usize) -> usize {
    check_scaled(out, next, 1.0)
}

/// [`check_in_order`] for a sound played at `gain`.
fn check_scaled(out: &[f32], mut next: usize, gain: f32) -> usize {
    for frame in out.chunks_exact(2) {
        if frame[0] == 0.0 && frame[1] == 0.0 {
            continue;
        }
        let (l, r) = expected(next);
        let (l, r) = (l * gain, r * gain);
        assert!(
            (frame[0] - l).abs() < 1e-5 && (frame[1] - r).abs() < 1e-5,
            "frame {next}: heard {frame:?}, expected ({l}, {r})"
        );
        next += 1;
    }
    next
}

/// Whether this process still has `path` open (the stream thread holds it while it runs).
fn has_open(path: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        panic!("/proc/self/fd is needed to see the stream thread's file");
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == path))
}

fn wait_closed(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while has_open(path) {
        assert!(
            Instant::now() < deadline,
            "{} is still open",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn temp_wav(dir: &Path, name: &str, frames: usize) -> PathBuf {
    let path = dir.join(name);
    position_wav(&path, frames);
    path.canonicalize().expect("canonical path")
}

/// Ten minutes streamed through the engine's mix: every frame, in order, nothing after.
#[test]
fn ten_streamed_minutes_are_heard_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = 10 * 60 * 48_000;
    let path = temp_wav(dir.path(), "ten-minutes.wav", frames);
    let mut rig = Rig::new();
    let ended = rig.play(1, long_clip(&path, frames), Shape::default());
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while ended.try_recv().is_err() {
        assert!(Instant::now() < deadline, "still playing at frame {next}");
        next = check_in_order(&rig.ticks(250), next);
    }
    next = check_in_order(&rig.ticks(5), next);
    assert_eq!(next, frames, "every frame heard once");
    wait_closed(&path);
}

/// Stopping a streamed sound fades it out like any other and ends its thread.
#[test]
fn a_stream_stops_mid_way_and_its_thread_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = 60 * 48_000;
    let path = temp_wav(dir.path(), "minute.wav", frames);
    let mut rig = Rig::new();
    let ended = rig.play(7, long_clip(&path, frames), Shape::default());
    let mut next = 0;
    while next < 48_000 {
        next = check_in_order(&rig.ticks(10), next);
    }
    assert!(has_open(&path), "the stream reads the file while it plays");
    rig.core.push(EngineMsg::Command(Command::Stop { id: 7 }));
    let after = rig.ticks(3);
    // The 10 ms fade, then nothing.
    assert!(
        after[960 * 2..].iter().all(|&s| s == 0.0),
        "silent after the fade"
    );
    ended
        .recv_timeout(Duration::from_secs(5))
        .expect("the playback ended");
    wait_closed(&path);
}

/// A trim window streams exactly that part of the file: it starts at the trim start and
/// ends at the trim end, at the sound's gain (how normalisation reaches the mix).
#[test]
fn a_streamed_trim_plays_only_its_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = 5 * 48_000;
    let path = temp_wav(dir.path(), "five.wav", frames);
    let mut rig = Rig::new();
    let shape = Shape {
        start: 1.5,
        end: Some(2.5),
        ..Shape::default()
    };
    let ended = rig.play_at(3, long_clip(&path, frames), shape, 0.5);
    let mut next = 72_000;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.try_recv().is_err() {
        assert!(Instant::now() < deadline, "still playing at frame {next}");
        next = check_scaled(&rig.ticks(10), next, 0.5);
    }
    assert_eq!(next, 120_000, "from 1.5 s to 2.5 s, nothing more");
    wait_closed(&path);
}

/// A file cut short while it streams ends the sound where the audio ends, without a panic;
/// what was there was heard in order.
#[test]
fn a_file_truncated_under_a_stream_ends_the_sound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = 10 * 48_000;
    let path = temp_wav(dir.path(), "cut.wav", frames);
    // The library measured ten seconds; the file now holds four (44-byte header).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(44 + 4 * 48_000 * 4).expect("truncate");
    drop(file);
    let mut rig = Rig::new();
    let ended = rig.play(5, long_clip(&path, frames), Shape::default());
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.try_recv().is_err() {
        assert!(Instant::now() < deadline, "still playing at frame {next}");
        next = check_in_order(&rig.ticks(10), next);
    }
    assert_eq!(next, 4 * 48_000, "the four seconds that are there");
    wait_closed(&path);
}

/// Through the real engine to the simulator's listener: the three-tone file, streamed, is
/// heard as the in-memory one is.
#[test]
fn a_streamed_clip_reaches_the_listener_whole() {
    let f = fixture();
    let clip = three_tone_clip();
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let source = Source::Stream(Arc::new(LongClip {
        path: f.tones.clone(),
        frames: clip.frames(),
    }));
    let request = PlayRequest::new(voice.next_id(), source, Target::All);
    voice.play_request(request).wait();
    wait_quiet(&voice);
    voice.close();
    assert_three_tones(&sim, guild(0), 0.96, 1.04); // each tone 1 s, to two 20 ms frames
    assert_no_violations(&sim);
}
