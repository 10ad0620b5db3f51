//! The engine tick: mix and encode once, then per connection seal and send.
//!
//! `cargo bench --bench tick`. Connections are real UDP sockets on loopback, already past the
//! handshake (the gateways are not part of a tick). A second section measures packet pacing
//! end to end against the simulator and prints the inter-packet interval at the listener.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group};
use voxboard_voice::discord::crypto::TransportMode;
use voxboard_voice::engine::{Command, EngineCore, EngineMsg, PlayRequest, Settings, Target};

fn tone(seconds: usize) -> Arc<[f32]> {
    (0..48_000 * seconds)
        .flat_map(|i| {
            let s = 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin();
            [s, s]
        })
        .collect()
}

/// An engine with `n` ready connections sending to one loopback sink, and a long sound playing.
fn engine_with(n: usize, mode: TransportMode) -> (EngineCore, UdpSocket) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut core = EngineCore::new(Settings::default(), None, Instant::now());
    for i in 0..n {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(sink.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        core.add_ready_connection(1000 + i as u64, socket, 1 + i as u32, mode, &[7; 32]);
    }
    // A looping sound: every measured tick mixes, encodes and sends (a sound that ended would
    // leave criterion timing an idle engine).
    let mut request = PlayRequest::new(1, tone(10), Target::All);
    request.looped = true;
    core.push(EngineMsg::Command(Command::Play(request)));
    core.tick(Instant::now());
    (core, sink)
}

/// Connection counts: the full set under `cargo bench`; a quick smoke run under `cargo test`
/// (which runs every bench target once, without `--bench`).
fn sizes() -> &'static [usize] {
    if std::env::args().any(|a| a == "--bench") {
        &[1, 10, 100, 1000]
    } else {
        &[1, 10]
    }
}

fn bench_tick(c: &mut Criterion) {
    for mode in [
        TransportMode::AeadAes256GcmRtpsize,
        TransportMode::AeadXChaCha20Poly1305Rtpsize,
    ] {
        let mut group = c.benchmark_group(format!("tick/{mode}"));
        for &n in sizes() {
            let (mut core, _sink) = engine_with(n, mode);
            let mut now = Instant::now();
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    now += Duration::from_millis(20);
                    core.tick(now);
                })
            });
        }
        group.finish();
    }
    bench_send_floor(c);
}

/// What the kernel alone charges per connection per tick: one `send` of an RTP-sized datagram
/// on each of `n` loopback sockets, nothing else. `tick/N` minus this is the engine's own work;
/// on a VM the syscall is most of a connection's cost.
fn bench_send_floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_floor");
    for &n in sizes() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sockets: Vec<UdpSocket> = (0..n)
            .map(|_| {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.connect(sink.local_addr().unwrap()).unwrap();
                socket.set_nonblocking(true).unwrap();
                socket
            })
            .collect();
        let packet = [0x5au8; 180];
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                for socket in &sockets {
                    let _ = socket.send(std::hint::black_box(&packet));
                }
            })
        });
    }
    group.finish();
}

/// The same tick with DAVE on: each connection frame-encrypts (AES-128-GCM, its own sender
/// key) before transport encryption. Groups are built like the gateway builds them.
fn bench_tick_dave(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_dave/aead_aes256_gcm_rtpsize");
    for &n in sizes() {
        let (mut core, _sink) = engine_with(n, TransportMode::AeadAes256GcmRtpsize);
        for i in 0..n as u64 {
            let (bot, _listener) = voxboard_sim::ready_pair(1, 2, 1000 + i).expect("DAVE group");
            core.set_dave_session(1000 + i, bot, 2);
        }
        let mut now = Instant::now();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                now += Duration::from_millis(20);
                core.tick(now);
            })
        });
    }
    group.finish();
    let (mut bot, _listener) = voxboard_sim::ready_pair(1, 2, 9).expect("DAVE group");
    let frame = vec![0x5au8; 120];
    c.bench_function("dave/encrypt_opus_120_bytes", |b| {
        b.iter(|| {
            bot.encrypt_opus(std::hint::black_box(&frame))
                .map(|f| f.len())
        })
    });
}

/// Cost of mixing one playing sound into a frame, and of a whole tick as sounds pile up.
fn bench_mix(c: &mut Criterion) {
    use voxboard_audio::FRAME_LEN;
    use voxboard_audio::mixer::{Cursor, Limiter, add_frame};
    let mut group = c.benchmark_group("mix");
    let cursor = Cursor::new(tone(10), 0.8, false);
    let mut frame = vec![0.0f32; FRAME_LEN];
    group.bench_function("add_one_clip_frame", |b| {
        b.iter(|| add_frame(std::hint::black_box(&mut frame), &cursor, 1.0))
    });
    let mut limiter = Limiter::default();
    group.bench_function("limiter_frame", |b| {
        b.iter(|| limiter.process(std::hint::black_box(&mut frame)))
    });
    for clips in [1usize, 8, 32] {
        let (mut core, _sink) = engine_with(1, TransportMode::AeadAes256GcmRtpsize);
        for id in 0..clips as u64 - 1 {
            let mut request = PlayRequest::new(100 + id, tone(10), Target::All);
            request.looped = true;
            core.push(EngineMsg::Command(Command::Play(request)));
        }
        let mut now = Instant::now();
        group.bench_with_input(
            BenchmarkId::new("tick_with_clips", clips),
            &clips,
            |b, _| {
                b.iter(|| {
                    now += Duration::from_millis(20);
                    core.tick(now);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_tick, bench_tick_dave, bench_mix);

fn main() {
    benches();
    if std::env::args().any(|a| a == "--bench") {
        pacing::report();
        pacing::latency_report();
    }
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}

mod pacing {
    use std::time::{Duration, Instant};

    use voxboard_sim::{SimConfig, Simulator};
    use voxboard_voice::discord::ws::Token;
    use voxboard_voice::engine::{Target, Voice, VoiceConfig};

    /// Plays 10 s into the simulator and prints the inter-packet interval at the listener.
    pub fn report() {
        let sim = Simulator::start(SimConfig::with_guilds(1)).expect("simulator");
        let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
        config.gateway_url = sim.gateway_url();
        let voice = Voice::connect(config).expect("connect");
        voice.join_channel(100, 1002, false, false).expect("join");
        voice.play(super::tone(10), Target::All, 1.0).wait();
        std::thread::sleep(Duration::from_millis(300));
        voice.close();
        let frames = sim.heard(100).frames;
        let mut gaps: Vec<f64> = frames
            .windows(2)
            .map(|w| w[1].at.duration_since(w[0].at).as_secs_f64() * 1000.0)
            .collect();
        gaps.sort_by(f64::total_cmp);
        let pick = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
        println!(
            "pacing at the simulator over {} packets: median {:.3} ms, p99 {:.3} ms, p1 {:.3} ms, max {:.3} ms",
            gaps.len() + 1,
            pick(0.5),
            pick(0.99),
            pick(0.01),
            gaps[gaps.len() - 1]
        );
    }

    /// Command-to-first-packet latency when idle: a play command is sent with nothing playing,
    /// and the clock is measured until the simulator receives the first packet of it.
    pub fn latency_report() {
        let sim = Simulator::start(SimConfig::with_guilds(1)).expect("simulator");
        let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
        config.gateway_url = sim.gateway_url();
        let voice = Voice::connect(config).expect("connect");
        voice.join_channel(100, 1002, false, false).expect("join");
        let short: std::sync::Arc<[f32]> = super::tone(1)[..48_000 / 10 * 2].into();
        let mut latencies = Vec::new();
        for _ in 0..40 {
            // Let the previous sound's silence tail finish: the engine is idle again.
            std::thread::sleep(Duration::from_millis(250));
            let before = sim.heard(100).frames.len();
            let sent = Instant::now();
            let playing = voice.play(short.clone(), Target::All, 1.0);
            let deadline = sent + Duration::from_secs(2);
            let arrived = loop {
                if let Some(f) = sim.heard(100).frames.get(before).filter(|f| !f.silence) {
                    break Some(f.at);
                }
                if Instant::now() > deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_micros(200));
            };
            if let Some(at) = arrived {
                latencies.push(at.saturating_duration_since(sent).as_secs_f64() * 1000.0);
            }
            playing.wait();
        }
        voice.close();
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "idle play command -> first packet at the simulator, {} runs: p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            latencies.len(),
            pick(0.5),
            pick(0.9),
            latencies[latencies.len() - 1]
        );
    }
}
