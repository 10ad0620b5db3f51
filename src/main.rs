//! `voxboard`: the command line. `play` joins channels and plays files headless; `sim` runs the
//! Discord simulator on loopback.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "voxboard", version, about = "A soundboard for Discord voice")]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Join voice channels, play files into all of them, leave.
    ///
    /// The bot token is read from the DISCORD_TOKEN environment variable or from --token-file
    /// (never from the command line, which every user on the machine can read).
    Play(cli::play::PlayArgs),
    /// List audio input and output devices (ids for --input-device / --output-device).
    Devices,
    /// Run the Discord simulator on loopback and print its gateway URL and test token.
    Sim {
        /// How many guilds the simulator has (ids 100, 101, ...).
        #[arg(long, default_value_t = 2)]
        guilds: usize,
    },
}

fn main() -> ExitCode {
    cli::init_logging();
    let args = Args::parse();
    let result = match args.command {
        Some(Cmd::Play(play)) => cli::play::run(play),
        Some(Cmd::Sim { guilds }) => cli::sim::run(guilds),
        Some(Cmd::Devices) => cli::devices::run(),
        None => {
            eprintln!(
                "The desktop app is not built yet. Try: voxboard play --sim --join 100:1002 assets/sounds/chime.wav"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
