//! The faults the soak draws from: the simulator's set, minus the ones that end a connection for
//! good by design (kick, channel deleted, removed from the guild: the user must act) and
//! `InjectPanic` (an engine fault, and the soak counts panics as failures).

use std::time::Duration;

use voxboard_sim::Simulator;

/// Names, in the order `inject` knows them; "main" faults hit every guild.
pub const ALL: &[&str] = &[
    "drop_voice",
    "close_voice 4015 (resumable)",
    "close_voice 1001 (server restart)",
    "close_voice 4006 (session gone)",
    "close_voice 4009 (session timeout)",
    "move_voice_server (region move)",
    "reallocate_voice_server (endpoint null, then a new one)",
    "unreachable_voice_server",
    "silent voice server, then close_voice 4006",
    "main_reconnect (op 7)",
    "main_invalidate resumable",
    "main_invalidate not resumable",
    "drop_main",
    "close_main 4000",
    "main_outage 12 s (session lost, voice 4014)",
    "network_blip (dropped from the channel, no 4014)",
];

pub fn inject(sim: &Simulator, index: usize, guild: u64) {
    match index {
        0 => sim.drop_voice(guild),
        1 => sim.close_voice(guild, 4015),
        2 => sim.close_voice(guild, 1001),
        3 => sim.close_voice(guild, 4006),
        4 => sim.close_voice(guild, 4009),
        5 => sim.move_voice_server(guild),
        6 => sim.reallocate_voice_server(guild, Duration::from_millis(300)),
        7 => sim.announce_unreachable_voice_server(guild),
        8 => {
            sim.silence_voice_server(guild, 1);
            sim.close_voice(guild, 4006);
        }
        9 => sim.main_reconnect(),
        10 => sim.main_invalidate(true),
        11 => sim.main_invalidate(false),
        12 => sim.drop_main(),
        13 => sim.close_main(4000),
        14 => sim.main_outage(Duration::from_secs(12)),
        _ => sim.network_blip(guild),
    }
}
