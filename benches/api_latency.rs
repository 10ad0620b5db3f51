//! Control API request → first RTP packet at the simulator's listener, on loopback.
//!
//! `cargo bench --bench api_latency`. The real app (kittest harness: the real core and engine,
//! API on its own thread) joined to one guild of the real simulator over real sockets; each
//! sample POSTs `/v1/sounds/{id}/play` for a short, already decoded sound on a kept-alive
//! connection and takes the time from just before the request to the arrival of the first
//! audio packet at the simulated listener. The UI thread is stepped continuously, as eframe
//! wakes it at once for an API request. Each sample starts from an idle engine (a play then
//! goes out at once; during another sound it waits for the next 20 ms tick). Criterion reports the mean and median; the p50 and p99
//! of every sample are printed at the end (criterion does not give percentiles).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use egui_kittest::Harness;
use voxboard::api::{ApiOptions, RateLimit};
use voxboard::board::Board;
use voxboard::board::store::Store;
use voxboard::ui::token::TokenState;
use voxboard::ui::{AppConfig, VoxApp};
use voxboard_sim::{SimConfig, Simulator, demo_config};
use voxboard_voice::engine::Phase;

const GUILD: u64 = 100;
const CHANNEL: u64 = 1002;

struct Rig {
    h: Harness<'static, VoxApp>,
    sim: Simulator,
    /// Sends a play request on the worker's kept-alive connection; answers (sent at, status).
    play: mpsc::Sender<()>,
    played: mpsc::Receiver<(Instant, u16, Instant)>,
    /// Request to answer, per sample (where the time goes: the UI thread's part).
    answered: Vec<Duration>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Simulator::start(demo_config()).expect("simulator");
        let mut board = Board::default();
        let path = dir.path().join("blip.wav");
        // 100 ms: it ends by itself between samples, and the engine goes idle again.
        voxboard_testkit::write_tones(&path, &[(660.0, 0.1)]);
        let id = board.add_sound(0, path);
        board.settings.connections.insert(GUILD, CHANNEL);
        board.settings.gateway_url = Some(sim.gateway_url());
        let store = Store::new(dir.path());
        store.save(&board).expect("save board");
        let mut config = AppConfig::headless(store, TokenState::demo(SimConfig::TEST_TOKEN));
        config.api = Some(ApiOptions {
            port: Some(0),
            runtime_dir: None,
            instance: voxboard::api::runtime_file::Instance::App,
            rate: RateLimit {
                per_second: 1e6,
                burst: 1e6,
            },
            ptt_hold: voxboard::api::PTT_HOLD,
        });
        let mut h = Harness::builder()
            .with_size(egui::vec2(1200.0, 760.0))
            .build_eframe(move |_cc| VoxApp::new(config));
        let url = format!("{}/v1/sounds/{id}/play", h.state().api_url().expect("API"));
        let key = format!("Bearer {}", h.state().core.board.settings.api.key.expose());
        let (play, jobs) = mpsc::channel::<()>();
        let (done, played) = mpsc::channel();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .build()
                .into();
            for () in jobs {
                let at = Instant::now();
                let status = agent
                    .post(&url)
                    .header("Authorization", &key)
                    .send_empty()
                    .map_or(0, |r| r.status().as_u16());
                if done.send((at, status, Instant::now())).is_err() {
                    return;
                }
            }
        });
        let end = Instant::now() + Duration::from_secs(30);
        while !h
            .state()
            .core
            .status
            .connections
            .iter()
            .any(|c| c.guild_id == GUILD && c.phase == Phase::Ready)
        {
            assert!(Instant::now() < end, "the guild never became ready");
            h.step();
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut rig = Rig {
            h,
            sim,
            play,
            played,
            answered: Vec::new(),
            _dir: dir,
        };
        // The first play decodes the file (202 "loading"): not what is measured.
        rig.sample();
        rig
    }

    /// One play: request to first audio packet heard.
    fn sample(&mut self) -> Duration {
        self.play.send(()).expect("worker");
        // Stepped as eframe would run it, woken at once, but leaving the CPU to the API, engine
        // and simulator threads between frames (a busy loop here starves them on 2 cores).
        let end = Instant::now() + Duration::from_secs(10);
        let (at, status, answered) = loop {
            self.h.step();
            if let Ok(r) = self.played.try_recv() {
                break r;
            }
            // Fail, never hang (a CI run would wait for its global timeout instead).
            assert!(Instant::now() < end, "the API never answered the play");
            std::thread::sleep(Duration::from_micros(200));
        };
        assert!(status == 200 || status == 202, "play answered {status}");
        self.answered.push(answered - at);
        let end = Instant::now() + Duration::from_secs(10);
        let heard = loop {
            if let Some(t) = self.sim.first_audio_after(GUILD, at) {
                break t;
            }
            assert!(Instant::now() < end, "nothing heard");
            // The engine sends without the UI thread: nothing to step.
            std::thread::sleep(Duration::from_micros(200));
        };
        // Wait for the sound and its trailing silence frames to end: each sample starts from
        // an idle engine, as a button press between others does.
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            self.h.step();
            let s = &self.h.state().core.status;
            if s.playing.is_empty() && !s.connections.iter().any(|c| c.speaking) {
                break;
            }
            assert!(Instant::now() < end, "the sound never ended");
            std::thread::sleep(Duration::from_millis(2));
        }
        // The status says "not speaking" a little before the engine counts itself idle (and
        // a play would then wait for the next 20 ms tick): a pause, as between two presses.
        std::thread::sleep(Duration::from_millis(50));
        heard.saturating_duration_since(at)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: n = {}, p50 = {:.2} ms, p99 = {:.2} ms, max = {:.2} ms",
        samples.len(),
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.99)),
        ms(samples[samples.len() - 1]),
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut rig = Rig::new();
    let mut samples: Vec<Duration> = Vec::new();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    c.bench_function("api/play_to_first_rtp", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let d = rig.sample();
                    samples.push(d);
                    d
                })
                .sum()
        })
    });
    if !bench {
        // `cargo test` runs each bench target once as a smoke test.
        return;
    }
    while samples.len() < 200 {
        samples.push(rig.sample());
    }
    report("api/play_to_first_rtp", &mut samples);
    report(
        "api/play_answered (request to HTTP answer)",
        &mut rig.answered,
    );
    c.final_summary();
}
