//! `voxboard sim`: the simulator as a process, for trying clients by hand.

use voxboard::sim::{SimConfig, Simulator};

pub fn run(guilds: usize) -> anyhow::Result<()> {
    let sim = Simulator::start(SimConfig::with_guilds(guilds.max(1)))?;
    println!("gateway: {}", sim.gateway_url());
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
    println!("running; press Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}
