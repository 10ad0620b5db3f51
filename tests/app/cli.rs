//! `voxboard play` as a user runs it: exit codes, one clear line on failure, and no secret in
//! any output (with trace logging on, to catch leaks through logs too).

use std::path::Path;
use std::process::{Command, Output};

use voxboard_sim::{SimConfig, SimEvent, Simulator};
use voxboard_testkit::*;

fn play(sim: &Simulator, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .arg("play")
        .args(["--gateway", &sim.gateway_url(), "--join-timeout", "3"])
        .args(args)
        .env("DISCORD_TOKEN", token)
        // Every level, third-party crates included: nothing secret may show at any of them.
        .env("RUST_LOG", "trace")
        .output()
        .expect("run voxboard")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_fails_with(out: &Output, needle: &str, secret: &str) {
    let all = text(out);
    assert!(
        !out.status.success(),
        "expected failure, got success:\n{all}"
    );
    let last = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned();
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "last line {last:?} lacks {needle:?}:\n{all}"
    );
    assert!(
        !all.contains(secret),
        "the token leaked into the output:\n{all}"
    );
}

#[test]
fn plays_and_reports_without_printing_the_token() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let f = fixture();
    // A name as a streamer gives it: non-ASCII letters, an en dash, an emoji, spaces.
    let tones = f.dir.path().join("Überraschung – 🎉.wav");
    std::fs::rename(&f.tones, &tones).unwrap();
    let out = play(
        &sim,
        SimConfig::TEST_TOKEN,
        &["--join", "100:1002", path(&tones)],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("loaded ") && all.contains("Überraschung – 🎉.wav ("),
        "{all}"
    );
    assert!(
        all.contains("guild 100: ready (aead_aes256_gcm_rtpsize)"),
        "{all}"
    );
    assert!(all.contains("guild 100: sent "), "{all}");
    assert!(!all.contains(SimConfig::TEST_TOKEN), "token leaked:\n{all}");
    let secrets = sim.issued_secrets();
    // The session id (main and voice state alike), the voice token, the transport key.
    assert!(secrets.len() >= 3, "{} credentials issued", secrets.len());
    for (i, secret) in secrets.iter().enumerate() {
        assert!(
            !all.contains(secret),
            "credential {i} leaked into the output"
        );
    }
    assert!(
        all.contains(" DEBUG ") || all.contains(" TRACE "),
        "debug logging was on:\n{all}"
    );
    assert_three_tones(&sim, 100, 0.95, 1.05);
    let deafened = sim.events().iter().all(|e| match e {
        SimEvent::VoiceStateRequest {
            channel_id: Some(_),
            self_deaf,
            ..
        } => *self_deaf,
        _ => true,
    });
    assert!(deafened, "play joined undeafened: {:#?}", sim.events());
    assert_no_violations(&sim);
}

#[test]
fn token_file_works_and_bad_token_says_authentication_failed() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let f = fixture();
    let secret = "BadToken.SECRET-5b1f9";
    let out = play(&sim, secret, &["--join", "100:1002", path(&f.tones)]);
    assert_fails_with(&out, "authentication failed", secret);

    let token_file = f.dir.path().join("token");
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let out = play(
        &sim,
        "",
        &[
            "--token-file",
            path(&token_file),
            "--join",
            "100:1002",
            path(&f.tones),
        ],
    );
    assert_fails_with(&out, "authentication failed", secret);
}

#[test]
fn text_channel_and_unknown_guild_are_refused() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let f = fixture();
    let out = play(
        &sim,
        SimConfig::TEST_TOKEN,
        &["--join", "100:1001", path(&f.tones)],
    );
    assert_fails_with(&out, "not a voice channel", SimConfig::TEST_TOKEN);
    // Discord lets a bot start one session per 5 s: a second `play` of the same bot right away
    // would wait out that window, longer than these runs' short join timeout. Another server.
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let out = play(
        &sim,
        SimConfig::TEST_TOKEN,
        &["--join", "999:1002", path(&f.tones)],
    );
    assert_fails_with(&out, "unknown", SimConfig::TEST_TOKEN);
}

#[test]
fn garbage_file_is_named_and_nothing_is_joined() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let f = fixture();
    let garbage = f.dir.path().join("garbage.mp3");
    std::fs::write(
        &garbage,
        b"this is not audio at all, just some text pretending",
    )
    .unwrap();
    let out = play(
        &sim,
        SimConfig::TEST_TOKEN,
        &["--join", "100:1002", path(&garbage)],
    );
    assert_fails_with(&out, "garbage.mp3", SimConfig::TEST_TOKEN);
    // At the default log level the user sees one clear line: not symphonia's "probe reached
    // EOF" ERROR before it, and (stderr is not a terminal here) no colour escapes.
    let quiet = Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args([
            "play",
            "--gateway",
            &sim.gateway_url(),
            "--join",
            "100:1002",
        ])
        .arg(path(&garbage))
        .env("DISCORD_TOKEN", SimConfig::TEST_TOKEN)
        .env_remove("RUST_LOG")
        .output()
        .expect("run voxboard");
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
    assert!(
        stderr.starts_with("error: ") && !stderr.contains('\u{1b}'),
        "stderr:\n{stderr}"
    );
    assert!(
        sim.events().is_empty(),
        "a bad file must fail before connecting: {:?}",
        sim.events()
    );
}

/// A file too long to keep decoded (here 93 s, past the 32 MiB of 48 kHz stereo that stays in
/// memory; in the field an hour-long ambience, 1.4 GB decoded) streams from disk, as in the
/// app: it plays, trimmed, instead of being refused as too large.
#[test]
fn a_long_file_streams_from_disk() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let f = fixture();
    let long = f.dir.path().join("long bed.wav");
    write_tones(
        &long,
        &[(440.0, 1.0), (660.0, 1.0), (880.0, 1.0), (0.0, 90.0)],
    );
    let out = play(
        &sim,
        SimConfig::TEST_TOKEN,
        &[
            "--join",
            "100:1002",
            "--end",
            "3",
            "--normalize",
            "-16",
            path(&long),
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("long bed.wav (93.00 s, playing 3.00 s of it, streamed from disk)"),
        "{all}"
    );
    assert!(
        all.contains("loudness of the whole file") && all.contains("LUFS"),
        "{all}"
    );
    assert_three_tones(&sim, 100, 0.95, 1.05);
    assert_no_violations(&sim);
}

#[test]
fn no_token_no_token_flag_and_no_plain_ws_to_remote_hosts() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let f = fixture();
    let out = play(&sim, "", &["--join", "100:1002", path(&f.tones)]);
    assert_fails_with(&out, "no bot token", SimConfig::TEST_TOKEN);

    let out = Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args(["play", "--token", "x", "--join", "1:2", "a.wav"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a --token flag would put the token in argv"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args([
            "play",
            "--gateway",
            "ws://gateway.example.com",
            "--join",
            "1:2",
            path(&f.tones),
        ])
        .env("DISCORD_TOKEN", "t")
        .output()
        .unwrap();
    assert_fails_with(&out, "wss://", "never-printed");

    // The REST API takes the token too: plain http only to this machine.
    let out = play(
        &sim,
        SimConfig::TEST_TOKEN,
        &[
            "--api",
            "http://discord.example.com/api/v10",
            "--join",
            "100:1002",
            path(&f.tones),
        ],
    );
    assert_fails_with(&out, "https://", SimConfig::TEST_TOKEN);
}

/// A stage where the bot may not make itself a speaker: `play` raises the bot's hand, sends
/// nothing, and fails after the join timeout saying why, instead of playing into the audience.
#[test]
fn a_stage_without_a_speaker_slot_fails_play_with_the_reason() {
    let mut config = SimConfig::with_guilds(1);
    config.guilds[0].channels.push(voxboard_sim::SimChannel {
        id: 4242,
        name: "Stage".into(),
        kind: voxboard_sim::ChannelKind::Stage,
        bitrate: 64_000,
        user_limit: 0,
    });
    config.guilds[0].bot_permissions.mute_members = false;
    let sim = Simulator::start(config).unwrap();
    let f = fixture();
    let out = play(
        &sim,
        SimConfig::TEST_TOKEN,
        &[
            "--api",
            &sim.rest_url(),
            "--join",
            "100:4242",
            path(&f.tones),
        ],
    );
    assert_fails_with(
        &out,
        "stage: suppressed — waiting for a speaker slot",
        SimConfig::TEST_TOKEN,
    );
    assert!(text(&out).contains("Mute Members"), "{}", text(&out));
    assert_eq!(sim.heard(100).audio_frames(), 0);
    assert_no_violations(&sim);
}

/// A connection that fails for good mid-sound (a moderator disconnects the bot) loses audio:
/// `play` says so and exits non-zero instead of reporting success.
#[test]
fn a_connection_lost_mid_sound_fails_the_run() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let f = fixture();
    let child = Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args([
            "play",
            "--gateway",
            &sim.gateway_url(),
            "--join",
            "100:1002",
        ])
        .arg(path(&f.tones))
        .env("DISCORD_TOKEN", SimConfig::TEST_TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let speaking = sim.wait_for(std::time::Duration::from_secs(10), |events| {
        events
            .iter()
            .any(|e| matches!(e, SimEvent::Speaking { speaking, .. } if *speaking != 0))
    });
    assert!(speaking, "play never started sending");
    std::thread::sleep(std::time::Duration::from_millis(500));
    sim.kick(100);
    let out = child.wait_with_output().unwrap();
    assert_fails_with(&out, "audio was lost", SimConfig::TEST_TOKEN);
    assert!(
        text(&out).contains("disconnected from the voice channel by someone"),
        "{}",
        text(&out)
    );
}

/// Numbers a person can mistype or a script can get wrong are refused with the reason, never a
/// panic (`inf` and 1e300 seconds used to overflow a `Duration`).
#[test]
fn absurd_durations_and_timeouts_are_refused_not_panicked_on() {
    let f = fixture();
    for args in [
        ["--duration", "inf"],
        ["--duration", "1e300"],
        ["--duration=-1", "--mic"],
        ["--join-timeout", "18446744073709551615"],
        ["--join-timeout", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_voxboard"))
            .args(["play", "--sim", "--join", "100:1002"])
            .args(args)
            .arg(path(&f.tones))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("invalid value") || stderr.contains("wants 0 to"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `voxboard sim` as a process, the way one tries a client by hand: it prints its gateway URL
/// and test token, and `voxboard play` against it works, with DAVE as configured.
#[test]
fn the_simulator_process_serves_play_with_and_without_dave() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    for (dave, expect) in [
        ("required", "E2EE DAVE v1, privacy code "),
        ("off", "E2EE off"),
    ] {
        let mut sim = Command::new(env!("CARGO_BIN_EXE_voxboard"))
            .args(["sim", "--guilds", "1", "--dave", dave])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start voxboard sim");
        let mut lines = BufReader::new(sim.stdout.take().expect("stdout")).lines();
        let (mut gateway, mut token) = (None, None);
        for line in lines.by_ref() {
            let line = line.expect("read sim output");
            if let Some(url) = line.strip_prefix("gateway: ") {
                gateway = Some(url.to_string());
            }
            if let Some(t) = line.strip_prefix("token:") {
                token = t.split_whitespace().next().map(str::to_string);
            }
            if line.starts_with("running") {
                break;
            }
        }
        let (gateway, token) = (gateway.expect("gateway line"), token.expect("token line"));
        let f = fixture();
        let out = Command::new(env!("CARGO_BIN_EXE_voxboard"))
            .args(["play", "--gateway", &gateway, "--join", "100:1002"])
            .arg(path(&f.tones))
            .env("DISCORD_TOKEN", &token)
            .output()
            .expect("run voxboard play");
        let _ = sim.kill();
        let _ = sim.wait();
        let all = text(&out);
        assert!(out.status.success(), "--dave {dave}:\n{all}");
        assert!(
            all.contains("guild 100: sent ") && all.contains(expect),
            "--dave {dave}: no {expect:?} in\n{all}"
        );
        assert!(!all.contains(&token), "the token leaked:\n{all}");
    }
}

/// `wss://` with the system's trust store: a gateway certificate listed in `SSL_CERT_FILE` is
/// trusted (the path company TLS proxies and antivirus rely on); without it `play` fails with
/// one line that names the TLS problem.
#[test]
fn wss_trusts_the_system_store_and_names_a_tls_failure() {
    let (sim, cert) = tls_sim();
    let f = fixture();
    let pem = f.dir.path().join("sim-ca.pem");
    std::fs::write(&pem, cert.pem).unwrap();
    let run = |cert_file: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxboard"));
        cmd.args([
            "play",
            "--gateway",
            &sim.gateway_url(),
            "--join-timeout",
            "3",
        ])
        .args(["--join", "100:1002", path(&f.tones)])
        .env("DISCORD_TOKEN", SimConfig::TEST_TOKEN)
        .env_remove("SSL_CERT_FILE");
        if let Some(file) = cert_file {
            cmd.env("SSL_CERT_FILE", file);
        }
        cmd.output().expect("run voxboard")
    };
    let trusted = run(Some(&pem));
    let all = text(&trusted);
    assert!(trusted.status.success(), "{all}");
    assert!(all.contains("E2EE DAVE v1"), "{all}");
    let untrusted = run(None);
    assert_fails_with(&untrusted, "TLS handshake failed", SimConfig::TEST_TOKEN);
}

/// `play` takes its gateway from the command line only: a board file's `gateway_url` (which the
/// app asks about before sending the token there) never decides where `play` sends the token.
#[test]
fn play_never_sends_the_token_to_a_gateway_named_by_a_board_file() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let config = tempfile::tempdir().unwrap();
    let mut board = voxboard::board::Board::default();
    board.settings.gateway_url = Some(sim.gateway_url());
    voxboard::board::store::Store::new(config.path())
        .save(&board)
        .unwrap();
    // A port nobody listens on: the one the command line names.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let f = fixture();
    let out = Command::new(env!("CARGO_BIN_EXE_voxboard"))
        .args(["play", "--gateway", &format!("ws://{closed}")])
        .args(["--join-timeout", "1", "--join", "100:1002", path(&f.tones)])
        .env("VOXBOARD_CONFIG_DIR", config.path())
        .env("DISCORD_TOKEN", SimConfig::TEST_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !sim.events()
            .iter()
            .any(|e| matches!(e, SimEvent::MainConnected { .. })),
        "play connected to the board file's gateway"
    );
}
