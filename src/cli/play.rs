//! `voxboard play`: join channels, play files in order into all of them, leave.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use voxboard_audio::decode::Clip;
use voxboard_audio::library::STREAM_ABOVE_BYTES;
use voxboard_audio::loudness;
use voxboard_audio::shaping::Shape;
use voxboard_audio::stream::{Prepared, Source, prepare_file};
use voxboard_sim::{SimConfig, Simulator};
use voxboard_voice::discord::rest::DISCORD_API;
use voxboard_voice::discord::ws::{DISCORD_GATEWAY, Token};
use voxboard_voice::engine::voice::ConnectError;
use voxboard_voice::engine::{Phase, PlayRequest, Status, Target, Voice, VoiceConfig, VoiceError};

/// `play` only speaks: joining deafened spares Discord sending it everyone's audio.
const DEAFENED: bool = true;

/// `--duration`: a number of seconds a `Duration` can hold and a person would ask for.
fn parse_duration(text: &str) -> Result<f64, String> {
    const DAY: f64 = 86_400.0;
    match text.parse::<f64>() {
        Ok(secs) if (0.0..=DAY).contains(&secs) => Ok(secs),
        Ok(_) => Err(format!("wants 0 to {DAY} seconds")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(clap::Args)]
pub struct PlayArgs {
    /// Gateway URL. Plain ws:// is accepted only for a loopback address (the simulator). Taken
    /// from here only, never from a board file (a shared board must not choose where the token goes).
    #[arg(long, default_value = DISCORD_GATEWAY)]
    gateway: String,
    /// Discord's REST API base (a bot in a stage channel asks to speak through it). Plain
    /// http:// is accepted only for a loopback address (the simulator).
    #[arg(long = "api", value_name = "URL", default_value = DISCORD_API)]
    api: String,
    /// A voice channel to join, as GUILD_ID:CHANNEL_ID. Repeat for several guilds.
    #[arg(long = "join", value_name = "GUILD_ID:CHANNEL_ID", required = true, value_parser = parse_join)]
    joins: Vec<(u64, u64)>,
    /// Read the bot token from this file instead of the DISCORD_TOKEN environment variable.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Play into a built-in Discord simulator instead (no token needed) and report what its
    /// listeners heard.
    #[arg(long, conflicts_with_all = ["gateway", "api", "token_file"])]
    sim: bool,
    /// Seconds to wait for the gateway, and for each voice connection (1 to 3600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    join_timeout: u64,
    /// Speak through the microphone for the whole run (push-to-talk held).
    #[arg(long)]
    mic: bool,
    /// Also play what goes out on the local output device.
    #[arg(long)]
    monitor: bool,
    /// Input device id for --mic (see `voxboard devices`); the default input otherwise.
    #[arg(long, value_name = "ID", requires = "mic")]
    input_device: Option<String>,
    /// Output device id for --monitor; the default output otherwise.
    #[arg(long, value_name = "ID", requires = "monitor")]
    output_device: Option<String>,
    /// Keep the channels open at least this many seconds (for --mic without files; up to a
    /// day).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    duration: Option<f64>,
    /// Start each file this many seconds in (trim; the file is not changed).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    start: Option<f64>,
    /// Stop each file this many seconds from its beginning.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    end: Option<f64>,
    /// Fade each file in over this many seconds after --start.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    fade_in: Option<f64>,
    /// Fade each file out over this many seconds before --end.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    fade_out: Option<f64>,
    /// Bring each file to this integrated loudness (EBU R128, e.g. -16), boosting at most
    /// +12 dB and never past -1 dBTP true peak.
    #[arg(long, value_name = "LUFS", allow_hyphen_values = true, value_parser = parse_lufs)]
    normalize: Option<f64>,
    /// Sound files (wav, flac, ogg, opus, mp3), played one after another.
    #[arg(required_unless_present = "mic", value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// `--normalize`: a loudness target a person would ask for.
fn parse_lufs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(lufs) if (-70.0..=0.0).contains(&lufs) => Ok(lufs),
        Ok(_) => Err("wants -70 to 0 LUFS".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_join(s: &str) -> Result<(u64, u64), String> {
    let (g, c) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not GUILD_ID:CHANNEL_ID"))?;
    let id = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("'{v}' is not a Discord id"))
    };
    Ok((id(g)?, id(c)?))
}

fn read_token(args: &PlayArgs) -> anyhow::Result<Token> {
    let token = match &args.token_file {
        Some(path) => Token::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read token file {}", path.display()))?,
        ),
        None => Token::new(std::env::var("DISCORD_TOKEN").unwrap_or_default()),
    };
    if token.is_empty() {
        bail!("no bot token: set DISCORD_TOKEN or pass --token-file PATH");
    }
    Ok(token)
}

pub fn run(args: PlayArgs) -> anyhow::Result<()> {
    // Decode first: a bad file should fail before we join anything.
    let clips = args
        .files
        .iter()
        .map(|path| {
            // Long files (music beds, hour-long ambience) stream from disk, as in the app.
            let prepared = prepare_file(path, STREAM_ABOVE_BYTES as u64, &mut |_| {})
                .map_err(|e| anyhow::anyhow!("cannot play: {e}"))?;
            let source = match &prepared {
                Prepared::Memory(clip) => Source::Memory(clip.samples.clone()),
                Prepared::Stream { clip, .. } => Source::Stream(clip.clone()),
            };
            let shape = args.shape();
            let trimmed = if shape.is_identity() {
                String::new()
            } else {
                let frames = shape.window(source.len()).len() / voxboard_audio::CHANNELS;
                format!(", playing {:.2} s of it", seconds(frames))
            };
            let streamed = match prepared {
                Prepared::Stream { .. } => ", streamed from disk",
                Prepared::Memory(_) => "",
            };
            println!(
                "loaded {} ({:.2} s{trimmed}{streamed})",
                path.display(),
                seconds(source.len() / voxboard_audio::CHANNELS)
            );
            let gain = args.normalize.map_or(1.0, |target| match &prepared {
                Prepared::Memory(clip) => normalise(clip, &shape, target),
                Prepared::Stream { loudness, .. } => {
                    // Measured in the pass that counted it: the whole file, not the window.
                    println!("  loudness of the whole file (it streams, so --start/--end do not change it)");
                    normalise_measured(*loudness, target)
                }
            });
            Ok((source, gain))
        })
        .collect::<anyhow::Result<Vec<(Source, f32)>>>()?;

    let sim = if args.sim {
        let mut config = SimConfig::with_guilds(args.joins.len().max(1));
        config
            .guilds
            .iter_mut()
            .zip(&args.joins)
            .for_each(|(g, (gid, cid))| {
                g.id = *gid;
                if let Some(voice) = g
                    .channels
                    .iter_mut()
                    .find(|c| c.kind == voxboard_sim::ChannelKind::Voice)
                {
                    voice.id = *cid;
                }
            });
        Some(Simulator::start(config)?)
    } else {
        None
    };
    let (gateway, api, token) = match &sim {
        Some(s) => (
            s.gateway_url(),
            s.rest_url(),
            Token::new(SimConfig::TEST_TOKEN),
        ),
        None => (args.gateway.clone(), args.api.clone(), read_token(&args)?),
    };

    let mut config = VoiceConfig::new(token);
    config.gateway_url = gateway;
    config.rest_url = api;
    config.settings.join_timeout = Duration::from_secs(args.join_timeout);
    config.connect_timeout = config.settings.join_timeout;
    let voice = Voice::connect(config).map_err(|e| match e {
        ConnectError::Voice(v) => anyhow::anyhow!("{v}"),
        other => anyhow::anyhow!("{other}"),
    })?;
    println!("gateway ready (bot user {})", voice.user_id());

    let printing = Arc::new(AtomicBool::new(true));
    let printer = spawn_phase_printer(voice.status(), printing.clone());
    // Held for the whole run: dropping them stops the audio streams.
    let _devices = super::devices::attach(&voice, &args.mic_monitor());

    let started = Instant::now();
    let result = join_and_play(&voice, &args.joins, &clips, &args.shape());
    if let Some(secs) = args.duration {
        let rest = Duration::from_secs_f64(secs).saturating_sub(started.elapsed());
        std::thread::sleep(rest);
    }
    voice.command(voxboard_voice::engine::Command::PushToTalk(false));
    wait_for_silence_tail(&voice);
    let final_status = voice.status().borrow().clone();
    let lost = result.and_then(|failures| audio_lost(&failures));
    let _ = voice.close();
    printing.store(false, Ordering::Relaxed);
    let _ = printer.join();
    lost?;

    for c in &final_status.connections {
        let e2ee = match (c.dave.protocol_version, &c.dave.privacy_code) {
            (0, _) => "off".to_string(),
            (v, Some(code)) => format!("DAVE v{v}, privacy code {code}"),
            (v, None) => format!("DAVE v{v}"),
        };
        println!(
            "guild {}: sent {} packets, {} bytes, encryption {}, E2EE {e2ee}",
            c.guild_id,
            c.packets,
            c.bytes,
            c.mode.unwrap_or("none")
        );
    }
    if let Some(sim) = sim {
        report_sim(&sim, &args.joins)?;
    }
    Ok(())
}

impl PlayArgs {
    fn shape(&self) -> Shape {
        Shape {
            start: self.start.unwrap_or(0.0),
            end: self.end,
            fade_in: self.fade_in.unwrap_or(0.0),
            fade_out: self.fade_out.unwrap_or(0.0),
        }
    }

    fn mic_monitor(&self) -> super::devices::DeviceChoice {
        super::devices::DeviceChoice {
            mic: self.mic.then(|| self.input_device.clone()),
            monitor: self.monitor.then(|| self.output_device.clone()),
        }
    }
}

/// Joins, plays, and returns the stream of connection failures that happened meanwhile (read it
/// a moment later: a failure is reported the tick after it ends its sounds).
fn join_and_play(
    voice: &Voice,
    joins: &[(u64, u64)],
    clips: &[(Source, f32)],
    shape: &Shape,
) -> anyhow::Result<Receiver<(u64, VoiceError)>> {
    // Join every guild at once; the slowest decides.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = joins
            .iter()
            .map(|&(g, c)| s.spawn(move || (g, c, voice.join_channel(g, c, false, DEAFENED))))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (guild, channel, r) in &results {
        if let Err(e) = r {
            bail!("cannot join channel {channel} of guild {guild}: {e}");
        }
    }
    // From here on a connection that fails for good loses audio: say so and exit non-zero
    // rather than report success with part of the sound missing.
    let failures = voice.errors();
    for (source, gain) in clips {
        // One mix for all connections: encoded once, encrypted per connection.
        let mut request = PlayRequest::new(voice.next_id(), source.clone(), Target::All);
        request.shape = *shape;
        request.gain = *gain;
        voice.play_request(request).wait();
    }
    Ok(failures)
}

/// Measures the part of a clip that plays (its `--start`/`--end` window) and returns the gain
/// that brings it to `target` LUFS, saying what it found.
fn normalise(clip: &Clip, shape: &Shape, target: f64) -> f32 {
    let window = shape.window(clip.samples.len());
    normalise_measured(
        loudness::measure(&clip.samples[window.start..window.end]),
        target,
    )
}

/// The gain that brings a measured clip to `target` LUFS (a streamed file is measured whole,
/// in the pass that counted its length), saying what it found.
fn normalise_measured(m: Option<loudness::Measurement>, target: f64) -> f32 {
    let Some(m) = m else {
        return 1.0;
    };
    let Some(lufs) = m.lufs else {
        println!("  too short or silent to measure: played as it is");
        return 1.0;
    };
    let gain = loudness::gain_to_target(lufs, m.true_peak, target).unwrap_or(1.0);
    println!(
        "  {lufs:.1} LUFS, true peak {:.1} dBTP: gain {:+.1} dB towards {target} LUFS",
        m.true_peak_db(),
        20.0 * gain.log10()
    );
    gain
}

/// Connection failures since the sounds started: each one lost audio.
fn audio_lost(failures: &Receiver<(u64, VoiceError)>) -> anyhow::Result<()> {
    let lost: Vec<String> = failures
        .try_iter()
        .map(|(guild, e)| format!("guild {guild}: {e}"))
        .collect();
    if !lost.is_empty() {
        bail!(
            "audio was lost: a connection failed while playing ({})",
            lost.join("; ")
        );
    }
    Ok(())
}

/// Lets the five silence frames and speaking 0 go out before leaving.
fn wait_for_silence_tail(voice: &Voice) {
    let status = voice.status();
    let deadline = Instant::now() + Duration::from_secs(2);
    std::thread::sleep(Duration::from_millis(120));
    while Instant::now() < deadline && status.borrow().connections.iter().any(|c| c.speaking) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Prints one line per phase change of each connection, and each change of its place on a
/// stage.
fn spawn_phase_printer(
    status: tokio::sync::watch::Receiver<Status>,
    running: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last: HashMap<u64, (Phase, Option<String>)> = HashMap::new();
        while running.load(Ordering::Relaxed) {
            for c in &status.borrow().connections {
                let now = (c.phase, c.stage.clone());
                let before = last.insert(c.guild_id, now.clone());
                if before.as_ref().map(|b| b.0) != Some(c.phase) {
                    let extra = match (&c.reason, c.mode) {
                        (Some(r), _) => format!(": {r}"),
                        (None, Some(m)) if c.phase == Phase::Ready => format!(" ({m})"),
                        _ => String::new(),
                    };
                    println!("guild {}: {}{extra}", c.guild_id, c.phase);
                }
                if before.and_then(|b| b.1) != now.1 {
                    match &now.1 {
                        Some(stage) => println!("guild {}: {stage}", c.guild_id),
                        None if c.phase == Phase::Ready => {
                            println!("guild {}: stage: speaker", c.guild_id)
                        }
                        None => {}
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

fn report_sim(sim: &Simulator, joins: &[(u64, u64)]) -> anyhow::Result<()> {
    for &(guild, _) in joins {
        let heard = sim.heard(guild);
        let pcm = heard.pcm_mono();
        let pitch = if pcm.len() >= 4_800 {
            format!(
                ", dominant frequency {:.0} Hz",
                voxboard_audio::analysis::dominant_frequency(&pcm, 48_000, 50.0, 5_000.0)
            )
        } else {
            String::new()
        };
        println!(
            "simulator listener in guild {guild} heard {} audio frames ({:.2} s){pitch}",
            heard.audio_frames(),
            heard.audio_frames() as f64 * 0.02
        );
    }
    let violations = sim.violations();
    if !violations.is_empty() {
        for v in &violations {
            println!("protocol violation [{}]: {}", v.rule, v.detail);
        }
        bail!(
            "the simulator recorded {} protocol violations",
            violations.len()
        );
    }
    println!("the simulator recorded no protocol violations");
    Ok(())
}

/// Seconds in `frames` of 48 kHz audio.
fn seconds(frames: usize) -> f64 {
    frames as f64 / f64::from(voxboard_audio::SAMPLE_RATE)
}
