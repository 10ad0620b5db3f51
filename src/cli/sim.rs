//! `voxboard sim`: the simulator as a process, for trying clients by hand.

use std::io::Write;

use voxboard_sim::{DaveMode, SimConfig, Simulator};

pub fn run(guilds: usize, dave: DaveMode) -> anyhow::Result<()> {
    let mut config = SimConfig::with_guilds(guilds.max(1));
    config.dave = dave;
    let sim = Simulator::start(config)?;
    println!("gateway: {}", sim.gateway_url());
    println!("api:     {}", sim.rest_url());
    println!(
        "token:   {} (a test token, valid only here)",
        SimConfig::TEST_TOKEN
    );
    for g in &sim.config().guilds {
        for c in &g.channels {
            println!(
                "guild {} ({}) channel {} {:?} \"{}\"",
                g.id, g.name, c.id, c.kind, c.name
            );
        }
    }
    println!("DAVE: {dave:?}");
    println!("running; press Ctrl-C to stop");
    // Scripts read the lines above through a pipe: do not leave them in the buffer.
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
