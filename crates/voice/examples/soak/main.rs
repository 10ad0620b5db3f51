//! The soak (`scripts/soak MINUTES [SEED]`): the real engine against the simulator for MINUTES —
//! three guilds with DAVE, a one-second sound to all of them every 2 s, and every 30 s a random
//! fault from the simulator's set (`faults.rs`), injected while a sound plays. The simulator runs
//! in a child process (`sim_child.rs`) so the RSS and thread figures are the engine's.
//!
//! What counts, per sound and guild (the simulator's listener counts the non-silence frames):
//! - whole: at least 49 of its 50 frames heard;
//! - cut: fewer, but a fault hit that guild while the sound played or the guild's connection was
//!   not ready (or DAVE had no keys, or dropped frames) at some point during it — a fault may
//!   legitimately drop the audio of its outage;
//! - lost: fewer with nothing of the above — a failure.
//!
//! `SOAK_FAULT_EVERY=SECONDS` injects faults more often than every 30 s (to try every kind fast).
//!
//! It fails (exit 1) on any panic, any lost sound, any sound that never finished, any connection
//! not ready for longer than `watch::STUCK_BOUND`, and on runs of 10 minutes or more, anonymous
//! RSS or thread count grown by more than 5 % from the start (after the warm-up: 10 minutes in
//! on runs of 20 minutes or more, half the run on shorter ones that are judged) to the end. Anonymous RSS (heap, stacks) is what a leak grows; the whole RSS is printed too,
//! but most of it is the binary's code, paged in as each kind of fault first runs its recovery
//! path (about 13 → 15 MB of a 19 MB RSS in a debug build), which is not a leak. The live heap
//! (counted by `heap.rs`) is printed as a second witness. The figures after the first sound too.

mod faults;
mod heap;
mod proc_stats;
mod sim_child;
mod watch;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng, rngs::StdRng};
use voxboard_sim::SimConfig;
use voxboard_testkit::{guild, sine_clip, voice_channel};
use voxboard_voice::discord::ws::Token;
use voxboard_voice::engine::{Target, Voice, VoiceConfig};

use sim_child::{GUILDS, SimProcess};
use watch::Watch;

const PERIOD: Duration = Duration::from_secs(2);
const FAULT_EVERY: Duration = Duration::from_secs(30);
/// One second of tone: 50 frames of 20 ms.
const FRAMES_PER_SOUND: u64 = 50;
const WHOLE_AT_LEAST: u64 = FRAMES_PER_SOUND - 1;
/// A sound still playing this long after it started never finished.
const PLAY_BOUND: Duration = Duration::from_secs(30);
const GROWTH_LIMIT: f64 = 0.05;
/// The start figures are taken this far in: by then the first faults and their recoveries ran
/// and the allocator holds its working set, so growth after it is what a long run adds. Measured
/// (60 min, 2 vCPU): anonymous RSS 3.5 MB at 1 min, 4.0 MB at 10 min, then flat (4.07 MB at 47
/// min) — so a long run starts counting at 10 minutes, a short one (not judged) at 1, and one
/// in between at half its length (a 10-minute run measured from minute 1 grew 7.4 % while the
/// fault kinds first ran, then its 20-minute twin stayed within 0.3 % after minute 10).
const WARM_UP: Duration = Duration::from_secs(60);
const LONG_WARM_UP: Duration = Duration::from_secs(600);
const LONG_RUN_MINUTES: f64 = 20.0;
const GROWTH_CHECKED_FROM_MINUTES: f64 = 10.0;

static PANICS: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--sim-child") {
        return sim_child::serve();
    }
    let minutes = args.first().and_then(|m| m.parse::<f64>().ok());
    let Some(minutes) = minutes.filter(|m| m.is_finite() && *m > 0.0 && *m <= 24.0 * 60.0) else {
        eprintln!("usage: soak MINUTES [SEED]   (MINUTES > 0, at most a day)");
        return ExitCode::from(2);
    };
    let seed = match args.get(1).map(|s| s.parse::<u64>()) {
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("usage: soak MINUTES [SEED]   (SEED a whole number)");
            return ExitCode::from(2);
        }
        None => rand::rng().random(),
    };
    // RUST_LOG=voxboard_voice=info shows the engine's side of each fault (simulator credentials
    // only: nothing of a user's is in this process).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    match run(minutes, seed) {
        Ok(report) => report.verdict(),
        Err(e) => {
            eprintln!("soak: could not run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct Report {
    minutes: f64,
    seed: u64,
    sounds: u64,
    whole: u64,
    cut: u64,
    cut_frames_missing: u64,
    lost: u64,
    extra: u64,
    unfinished: u64,
    faults: Vec<u64>,
    stuck: u32,
    longest_outage: Duration,
    engine_restarts: u32,
    first: proc_stats::Stats,
    start: proc_stats::Stats,
    end: proc_stats::Stats,
    violations: String,
    sim_rss_kb: String,
}

fn run(minutes: f64, seed: u64) -> anyhow::Result<Report> {
    let mut report = Report {
        minutes,
        seed,
        faults: vec![0; faults::ALL.len()],
        ..Report::default()
    };
    println!("soak: {minutes} min, seed {seed}, {GUILDS} guilds with DAVE");
    let mut sim = SimProcess::spawn()?;
    let mut config = VoiceConfig::new(Token::new(SimConfig::TEST_TOKEN));
    config.gateway_url = sim.gateway_url.clone();
    let voice = Voice::connect(config).context("connect to the simulator")?;
    for i in 0..GUILDS {
        voice
            .join_channel(guild(i), voice_channel(i), false, false)
            .with_context(|| format!("join guild {}", guild(i)))?;
    }
    let clip = sine_clip(440.0, 0.3, 1.0);
    let mut watch = Watch::new(voice.status());
    let mut rng = StdRng::seed_from_u64(seed);
    let began = Instant::now();
    let end = began + Duration::from_secs_f64(minutes * 60.0);
    let fault_every = std::env::var("SOAK_FAULT_EVERY")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(FAULT_EVERY, Duration::from_secs);
    let mut next_fault = began + fault_every;
    let mut next_progress = began + Duration::from_secs(60);
    let mut slot = began;
    let mut warmed = false;
    let warm_up = if minutes >= LONG_RUN_MINUTES {
        LONG_WARM_UP
    } else if minutes >= GROWTH_CHECKED_FROM_MINUTES {
        Duration::from_secs_f64(minutes * 30.0)
    } else {
        WARM_UP
    };
    while Instant::now() < end {
        watch.sleep_until(slot);
        watch.take_disturbed();
        let before = sim.heard()?;
        let playing = voice.play(clip.clone(), Target::All, 1.0);
        report.sounds += 1;
        let mut hit = [false; GUILDS];
        if Instant::now() >= next_fault {
            let into_sound = Duration::from_millis(rng.random_range(0..1000));
            watch.sleep_until(Instant::now() + into_sound);
            let kind = rng.random_range(0..faults::ALL.len());
            let target = rng.random_range(0..GUILDS);
            sim.ask(&format!("fault {kind} {}", guild(target)))?;
            println!(
                "soak: {:>6.1} s  fault {} (guild {})",
                began.elapsed().as_secs_f64(),
                faults::ALL[kind],
                guild(target)
            );
            report.faults[kind] += 1;
            // The voice faults (the first nine) hit one guild; the main gateway's hit them all.
            hit = std::array::from_fn(|i| kind >= 9 || i == target);
            next_fault += fault_every;
        }
        let deadline = Instant::now() + PLAY_BOUND;
        while !playing.wait_timeout(Duration::from_millis(20)) {
            watch.poll();
            if Instant::now() > deadline {
                report.unfinished += 1;
                eprintln!(
                    "soak: sound {} did not finish in {PLAY_BOUND:?}",
                    report.sounds
                );
                playing.stop();
                break;
            }
        }
        // The silence tail and the packets in flight.
        watch.sleep_until(Instant::now() + Duration::from_millis(300));
        let after = sim.heard()?;
        let disturbed = watch.take_disturbed();
        for i in 0..GUILDS {
            let heard = after[i].saturating_sub(before[i]);
            if heard > FRAMES_PER_SOUND + 1 {
                report.extra += 1;
            }
            if heard >= WHOLE_AT_LEAST {
                report.whole += 1;
            } else if hit[i] || disturbed[i] {
                report.cut += 1;
                report.cut_frames_missing += FRAMES_PER_SOUND - heard;
            } else {
                report.lost += 1;
                eprintln!(
                    "soak: sound {} in guild {}: {heard} of {FRAMES_PER_SOUND} frames heard, no fault near it",
                    report.sounds,
                    guild(i)
                );
            }
        }
        if report.sounds == 1 {
            report.first = proc_stats::read();
            report.start = report.first;
        }
        if !warmed && began.elapsed() >= warm_up {
            warmed = true;
            report.start = proc_stats::read();
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(60);
            let now = proc_stats::read();
            println!(
                "soak: {:>5.1} min  sounds {}  whole {}  cut {}  lost {}  faults {}  stuck {}  rss {} kB (anon {} kB)  heap {} kB  threads {}",
                began.elapsed().as_secs_f64() / 60.0,
                report.sounds,
                report.whole,
                report.cut,
                report.lost,
                report.faults.iter().sum::<u64>(),
                watch.stuck,
                now.rss_kb,
                now.anon_kb,
                now.heap_kb,
                now.threads
            );
        }
        slot += PERIOD;
        slot = slot.max(Instant::now());
    }
    // Whatever the last fault did must be over within the bound.
    let settle = Instant::now() + watch::STUCK_BOUND;
    while !watch.all_ready() && Instant::now() < settle {
        watch.sleep_until(Instant::now() + Duration::from_millis(100));
    }
    watch.sleep_until(Instant::now() + Duration::from_millis(100));
    watch.close_outages();
    report.end = proc_stats::read();
    report.stuck = watch.stuck;
    report.longest_outage = watch.longest_outage;
    report.engine_restarts = watch.engine_restarts;
    report.violations = sim.ask("violations")?;
    report.sim_rss_kb = sim.ask("rss")?;
    voice.close();
    Ok(report)
}

fn growth(start: u64, end: u64) -> f64 {
    if start == 0 {
        return 0.0;
    }
    (end as f64 - start as f64) / start as f64
}

impl Report {
    fn verdict(&self) -> ExitCode {
        let played = self.sounds * GUILDS as u64;
        let panics = PANICS.load(Ordering::SeqCst);
        let rss = growth(self.start.rss_kb, self.end.rss_kb);
        let anon = growth(self.start.anon_kb, self.end.anon_kb);
        let threads = growth(self.start.threads, self.end.threads);
        let faults: Vec<String> = faults::ALL
            .iter()
            .zip(&self.faults)
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| format!("{name}: {n}"))
            .collect();
        println!("soak: ran {} min, seed {}", self.minutes, self.seed);
        println!(
            "  faults injected: {} ({})",
            self.faults.iter().sum::<u64>(),
            faults.join(", ")
        );
        println!(
            "  sounds: {} × {GUILDS} guilds = {played} played; heard whole {}, cut by a fault {} ({} frames of {} missing), lost {}, unfinished {}, with extra frames {}",
            self.sounds,
            self.whole,
            self.cut,
            self.cut_frames_missing,
            played * FRAMES_PER_SOUND,
            self.lost,
            self.unfinished,
            self.extra
        );
        println!(
            "  connections stuck past {:?}: {} (longest outage {:.1} s)",
            watch::STUCK_BOUND,
            self.stuck,
            self.longest_outage.as_secs_f64()
        );
        println!(
            "  panics: {panics} (engine restarts {})",
            self.engine_restarts
        );
        println!(
            "  after the first sound: RSS {} kB (anon {} kB), heap {} kB, threads {}",
            self.first.rss_kb, self.first.anon_kb, self.first.heap_kb, self.first.threads
        );
        println!(
            "  anonymous RSS: {} kB → {} kB ({:+.1} %); code and other file pages {} kB → {} kB",
            self.start.anon_kb,
            self.end.anon_kb,
            anon * 100.0,
            self.start.file_kb,
            self.end.file_kb
        );
        println!(
            "  live heap: {} kB → {} kB ({:+.1} %)",
            self.start.heap_kb,
            self.end.heap_kb,
            growth(self.start.heap_kb, self.end.heap_kb) * 100.0
        );
        println!(
            "  RSS: {} kB → {} kB ({:+.1} %), peak {} kB; threads: {} → {} ({:+.1} %)",
            self.start.rss_kb,
            self.end.rss_kb,
            rss * 100.0,
            self.end.peak_rss_kb,
            self.start.threads,
            self.end.threads,
            threads * 100.0
        );
        println!(
            "  simulator (its own process): violations {}; RSS {} kB",
            self.violations, self.sim_rss_kb
        );
        let mut failed = Vec::new();
        if panics > 0 || self.engine_restarts > 0 {
            failed.push("panics");
        }
        if self.lost > 0 {
            failed.push("sounds lost with no fault to explain them");
        }
        if self.unfinished > 0 {
            failed.push("sounds that never finished");
        }
        if self.stuck > 0 {
            failed.push("stuck connections");
        }
        if self.minutes >= GROWTH_CHECKED_FROM_MINUTES {
            if anon > GROWTH_LIMIT {
                failed.push("anonymous RSS grew more than 5 %");
            }
            if threads > GROWTH_LIMIT {
                failed.push("thread count grew more than 5 %");
            }
        }
        if failed.is_empty() {
            println!("soak: PASS");
            ExitCode::SUCCESS
        } else {
            println!("soak: FAIL: {}", failed.join("; "));
            ExitCode::FAILURE
        }
    }
}
