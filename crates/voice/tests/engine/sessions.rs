//! New gateway sessions are a budget: Discord allows a bot 1000 Identifies a day and one per
//! 5 s, and past the daily limit it resets the bot token. The engine paces its Identifies and
//! stops before the limit, saying why.

use std::time::Duration;

use crate::common::*;
use voxboard_sim::{SimConfig, SimEvent, Simulator};
use voxboard_voice::discord::rest::{RestClient, RestError, check_rest_url};
use voxboard_voice::discord::ws::{TlsTrust, Token};
use voxboard_voice::engine::Phase;

fn main_identifies(sim: &Simulator) -> usize {
    sim.events()
        .iter()
        .filter(|e| matches!(e, SimEvent::MainIdentify { .. }))
        .count()
}

#[test]
fn identifies_are_paced_and_the_engine_stops_before_discord_would_reset_the_token() {
    let mut config = SimConfig::with_guilds(1);
    config.session_start_limit = 2;
    let sim = Simulator::start(config).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    // A second session right away: it must wait out Discord's 5 s window, not be refused.
    sim.main_invalidate(false);
    assert!(
        sim.wait_for(Duration::from_secs(30), |e| {
            e.iter()
                .filter(|e| matches!(e, SimEvent::MainIdentify { .. }))
                .count()
                == 2
        }),
        "the engine identified again"
    );
    let back = wait_status(&voice, Duration::from_secs(30), |s| {
        s.connections[0].phase == Phase::Ready && s.connections[0].rejoins > 0
    });
    assert_eq!(back.connections[0].phase, Phase::Ready, "{back:?}");
    // The day's last session start: the engine refuses it rather than losing the token.
    sim.main_invalidate(false);
    let refused = wait_status(&voice, Duration::from_secs(30), |s| {
        s.gateway_error.is_some()
    });
    voice.close();
    let said = refused.gateway_error.unwrap_or_default();
    assert!(
        said.contains("daily limit of new sessions") && said.contains("0 of 2 left"),
        "{said}"
    );
    assert_eq!(main_identifies(&sim), 2);
    let rate_limited = sim
        .events()
        .iter()
        .filter(|e| matches!(e, SimEvent::IdentifyRateLimited))
        .count();
    assert_eq!(rate_limited, 0, "an Identify inside the 5 s window");
    assert_no_violations(&sim);
}

#[test]
fn the_session_start_limit_needs_the_bot_token() {
    let sim = Simulator::start(SimConfig::with_guilds(1)).unwrap();
    let base = check_rest_url(&sim.rest_url()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let good = RestClient::new(
        base.clone(),
        Token::new(SimConfig::TEST_TOKEN),
        TlsTrust::default(),
    );
    let limit = runtime.block_on(good.session_start_limit()).unwrap();
    assert_eq!(
        (limit.total, limit.remaining, limit.max_concurrency),
        (1000, 1000, 1)
    );
    assert!(limit.reset_after <= Duration::from_secs(86_400));
    let bad = RestClient::new(base, Token::new("not.the.token"), TlsTrust::default());
    let err = runtime.block_on(bad.session_start_limit()).unwrap_err();
    assert!(
        matches!(err, RestError::Refused { status: 401, .. }),
        "{err:?}"
    );
}
