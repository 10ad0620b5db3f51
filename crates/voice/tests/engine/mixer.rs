//! The engine's mix, observed through the monitor output (the exact PCM that is encoded), with
//! ticks run directly on a fake clock: retrigger policies, stop fades, gains, push-to-talk.

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxboard_audio::FRAME_LEN;
use voxboard_voice::discord::crypto::TransportMode;
use voxboard_voice::engine::mix::{Exclusive, MicSource, MonitorSink};
use voxboard_voice::engine::{
    Command, EngineCore, EngineMsg, PlayRequest, Retrigger, Settings, Target,
};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Vec<f32>>>>);

impl MonitorSink for Capture {
    fn push_frame(&mut self, frame: &[f32]) -> bool {
        self.0.lock().unwrap().push(frame.to_vec());
        true
    }
}

impl Capture {
    fn frames(&self) -> Vec<Vec<f32>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A microphone that always delivers a constant level.
struct ConstMic(f32);

impl MicSource for ConstMic {
    fn read_frame(&mut self, out: &mut [f32]) -> bool {
        out.fill(self.0);
        true
    }
}

struct Rig {
    core: EngineCore,
    now: Instant,
    capture: Capture,
    sink: UdpSocket,
}

impl Rig {
    fn new() -> Self {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(sink.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let now = Instant::now();
        let mut core = EngineCore::new(Settings::default(), None, now);
        core.add_ready_connection(1, socket, 7, TransportMode::AeadAes256GcmRtpsize, &[1; 32]);
        let capture = Capture::default();
        core.push(EngineMsg::Command(Command::SetMonitorSink(Some(
            Exclusive::new(Box::new(capture.clone())),
        ))));
        Rig {
            core,
            now,
            capture,
            sink,
        }
    }

    fn send(&mut self, c: Command) {
        self.core.push(EngineMsg::Command(c));
    }

    fn play(&mut self, id: u64, sound: u64, samples: &Arc<[f32]>, retrigger: Retrigger) {
        let mut r = PlayRequest::new(id, samples.clone(), Target::All);
        r.sound = Some(sound);
        r.retrigger = retrigger;
        self.send(Command::Play(r));
    }

    /// Runs `n` ticks; returns the monitor frames they produced.
    fn ticks(&mut self, n: usize) -> Vec<Vec<f32>> {
        for _ in 0..n {
            self.now += Duration::from_millis(20);
            self.core.tick(self.now);
        }
        self.capture.frames()
    }
}

fn constant(level: f32, frames: usize) -> Arc<[f32]> {
    vec![level; frames * FRAME_LEN].into()
}

fn first(frames: &[Vec<f32>]) -> Vec<f32> {
    frames.iter().map(|f| f[0]).collect()
}

#[test]
fn overlap_adds_restart_starts_over_ignore_and_stop_toggle() {
    // A ramp: each frame's level tells how far the sound has played.
    let ramp: Arc<[f32]> = (0..10)
        .flat_map(|i| vec![0.01 * (i + 1) as f32; FRAME_LEN])
        .collect();

    let mut rig = Rig::new();
    rig.play(1, 9, &ramp, Retrigger::Overlap);
    rig.ticks(3);
    rig.play(2, 9, &ramp, Retrigger::Overlap);
    let levels = first(&rig.ticks(1));
    assert!(
        (levels[0] - (0.04 + 0.01)).abs() < 1e-6,
        "overlap sums both: {levels:?}"
    );

    let mut rig = Rig::new();
    rig.play(1, 9, &ramp, Retrigger::Restart);
    rig.ticks(3);
    rig.play(2, 9, &ramp, Retrigger::Restart);
    let f = rig.ticks(1);
    // The old one fades out over 10 ms while the new one starts from its first frame.
    assert!((f[0][0] - (0.04 + 0.01)).abs() < 1e-6);
    assert!(
        (f[0][FRAME_LEN - 2] - 0.01).abs() < 1e-6,
        "old instance faded out within the frame"
    );

    let mut rig = Rig::new();
    rig.play(1, 9, &ramp, Retrigger::Ignore);
    rig.ticks(3);
    rig.play(2, 9, &ramp, Retrigger::Ignore);
    assert!(
        (first(&rig.ticks(1))[0] - 0.04).abs() < 1e-6,
        "ignored while playing"
    );

    let mut rig = Rig::new();
    rig.play(1, 9, &ramp, Retrigger::Stop);
    rig.ticks(3);
    rig.play(2, 9, &ramp, Retrigger::Stop);
    let f = rig.ticks(2);
    assert!(f[0][FRAME_LEN - 2].abs() < 1e-6, "second press stopped it");
    assert!(f[1].iter().all(|s| *s == 0.0), "and nothing new started");
}

#[test]
fn stop_all_fades_instead_of_clicking() {
    let mut rig = Rig::new();
    rig.send(Command::Play(PlayRequest::new(
        1,
        constant(0.5, 100),
        Target::All,
    )));
    rig.ticks(2);
    rig.send(Command::StopAll);
    let f = rig.ticks(2);
    let frame = &f[0];
    assert!(
        (frame[0] - 0.5).abs() < 0.01,
        "starts from the current level"
    );
    let largest_step = frame
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0f32, f32::max);
    assert!(largest_step < 0.01, "no click: {largest_step}");
    assert_eq!(*frame.last().unwrap(), 0.0);
    assert!(f[1].iter().all(|s| *s == 0.0));
}

#[test]
fn overlapping_full_scale_clips_stay_within_full_scale() {
    let mut rig = Rig::new();
    for id in 0..4 {
        rig.send(Command::Play(PlayRequest::new(
            id,
            constant(0.9, 20),
            Target::All,
        )));
    }
    let f = rig.ticks(10);
    let peak = f.iter().flatten().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak <= 1.0, "peak {peak}");
    assert!(peak > 0.99, "the limiter keeps it loud: {peak}");
}

#[test]
fn master_gain_scales_and_nan_is_refused() {
    let mut rig = Rig::new();
    rig.send(Command::SetMasterGain(0.5));
    rig.send(Command::Play(PlayRequest::new(
        1,
        constant(0.4, 10),
        Target::All,
    )));
    assert!((first(&rig.ticks(1))[0] - 0.2).abs() < 1e-6);
    rig.send(Command::SetMasterGain(f32::NAN));
    assert!(
        (first(&rig.ticks(1))[0] - 0.4).abs() < 1e-6,
        "NaN gain falls back to unity"
    );
}

#[test]
fn push_to_talk_gates_the_microphone_with_ramps() {
    let mut rig = Rig::new();
    rig.send(Command::SetMic(Some(Exclusive::new(Box::new(ConstMic(
        0.3,
    ))))));
    rig.send(Command::SetMonitor {
        gain: 1.0,
        include_mic: true,
    });
    assert!(
        rig.ticks(2).iter().flatten().all(|s| *s == 0.0),
        "closed gate: silence"
    );
    rig.send(Command::PushToTalk(true));
    let f = rig.ticks(2);
    assert!(
        f[0][0] > 0.0 && f[0][0] < 0.01,
        "opens with a ramp, not a click"
    );
    assert!((f[1][0] - 0.3).abs() < 1e-6, "then passes the mic");
    rig.send(Command::PushToTalk(false));
    let f = rig.ticks(2);
    assert!(
        f[0][0] > 0.29 && *f[0].last().unwrap() == 0.0,
        "closes with a ramp"
    );
    assert!(f[1].iter().all(|s| *s == 0.0));
}

/// The edit dialog's preview: a trimmed clip on the local monitor only. The monitor hears the
/// window (and nothing before it); no packet goes to the connection.
#[test]
fn a_monitor_only_preview_plays_its_window_locally_and_sends_nothing() {
    let ramp: Arc<[f32]> = (0..10)
        .flat_map(|i| vec![0.01 * (i + 1) as f32; FRAME_LEN])
        .collect();
    let mut rig = Rig::new();
    let mut r = PlayRequest::new(1, ramp, Target::Monitor);
    r.shape = voxboard_audio::shaping::Shape {
        start: 0.06,
        end: Some(0.12),
        ..Default::default()
    };
    rig.send(Command::Play(r));
    let levels = first(&rig.ticks(5));
    let expected = [0.04, 0.05, 0.06, 0.0, 0.0];
    for (got, want) in levels.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "monitor heard {levels:?}");
    }
    rig.sink.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1500];
    assert!(
        rig.sink.recv(&mut buf).is_err(),
        "a preview must not reach Discord"
    );
}

/// The routing matrix's microphone row: with the mic routed to guild 1 only, guild 1 gets
/// packets while push-to-talk is held and guild 2 gets none; a sound to every guild then makes
/// two distinct mixes (mic + sound, sound alone) for three connections, so two encodes.
#[test]
fn the_microphone_goes_only_to_the_guilds_it_is_routed_to() {
    let mut rig = Rig::new();
    let mut sinks = Vec::new();
    for guild in [2, 3] {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(sink.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let key = [guild as u8; 32];
        rig.core.add_ready_connection(
            guild,
            socket,
            7 + guild as u32,
            TransportMode::AeadAes256GcmRtpsize,
            &key,
        );
        sink.set_nonblocking(true).unwrap();
        sinks.push(sink);
    }
    rig.sink.set_nonblocking(true).unwrap();
    let packets = |s: &UdpSocket| {
        let mut buf = [0u8; 1500];
        std::iter::from_fn(|| s.recv(&mut buf).ok()).count()
    };
    rig.send(Command::SetMic(Some(Exclusive::new(Box::new(ConstMic(
        0.3,
    ))))));
    rig.send(Command::SetMicTarget(Target::Guilds(vec![1])));
    rig.send(Command::PushToTalk(true));
    rig.ticks(10);
    assert_eq!(rig.core.mix_count(), 1, "one mix: the mic for guild 1");
    std::thread::sleep(Duration::from_millis(50)); // loopback delivery
    assert!(packets(&rig.sink) >= 10, "guild 1 hears the mic");
    assert_eq!(packets(&sinks[0]), 0, "guild 2 must not hear the mic");
    assert_eq!(packets(&sinks[1]), 0, "guild 3 must not hear the mic");

    rig.play(1, 9, &constant(0.1, 50), Retrigger::Overlap);
    rig.ticks(3);
    assert_eq!(
        rig.core.mix_count(),
        2,
        "mic + sound for guild 1, the sound alone shared by guilds 2 and 3"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        packets(&sinks[0]) >= 3 && packets(&sinks[1]) >= 3,
        "the sound goes everywhere"
    );

    // Back to every guild: one mix again.
    rig.send(Command::SetMicTarget(Target::All));
    rig.ticks(1);
    assert_eq!(rig.core.mix_count(), 1);
}
