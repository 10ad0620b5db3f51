mod common;
use common::*;
use std::time::Duration;
use voxboard::sim::{SimConfig, Simulator};
#[test]
fn dbg() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("voxboard::engine=debug,voxboard::discord=info")
        .with_test_writer()
        .try_init();
    let c = SimConfig::with_guilds(1);
    let sim = Simulator::start(c).unwrap();
    let voice = connect(&sim);
    voice
        .join_channel(guild(0), voice_channel(0), false, false)
        .unwrap();
    let first = sim.listeners(guild(0))[0];
    sim.remove_listener(guild(0), first);
    std::thread::sleep(Duration::from_secs(1));
    for e in sim.events() {
        let s = format!("{e:?}");
        if !s.contains("Heartbeat") {
            println!("{s}");
        }
    }
    println!("{:?}", sim.violations());
    voice.close();
}
