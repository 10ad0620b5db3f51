//! `voxboard`: the desktop app by default (`--demo` plays into a built-in simulator, no token
//! needed); `play` joins channels and plays files headless; `sim` runs the Discord simulator on
//! loopback; `trigger`, `stop-all` and `ptt` control a running app through its control API.
//!
//! On Windows the exe is a GUI program (no console window opens beside the app); the subcommands,
//! clap's help and errors attach to the console they were started from (`cli::attach_console`).
#![cfg_attr(windows, windows_subsystem = "windows")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

mod cli;

#[derive(Parser)]
#[command(name = "voxboard", version, about = "A soundboard for Discord voice")]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Run the app against a built-in Discord simulator with the bundled sounds (no token, and
    /// your own board is left alone).
    #[arg(long)]
    demo: bool,
    /// With --demo: on exit, write what the simulator's listeners heard to this JSON file.
    #[arg(long, value_name = "PATH", requires = "demo")]
    demo_report: Option<PathBuf>,
    /// Close the window after this many seconds (for scripted runs).
    #[arg(long, value_name = "SECS")]
    exit_after: Option<f64>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Join voice channels, play files into all of them, leave.
    ///
    /// The bot token is read from the DISCORD_TOKEN environment variable or from --token-file
    /// (never from the command line, which every user on the machine can read).
    Play(Box<cli::play::PlayArgs>),
    /// List audio input and output devices (ids for --input-device / --output-device).
    Devices,
    /// Play a sound on the running app's board (by name, case-insensitive, or by id).
    ///
    /// Exits 3 when no app is running, 4 when no sound has that name, 5 when several do.
    Trigger {
        /// The sound's name or id.
        #[arg(value_name = "NAME|ID")]
        sound: String,
    },
    /// Stop every sound on the running app.
    StopAll,
    /// Hold (down) or release (up) push-to-talk on the running app.
    Ptt {
        #[arg(value_enum)]
        state: Ptt,
    },
    /// Run the Discord simulator on loopback and print its gateway URL and test token.
    Sim {
        /// How many guilds the simulator has (ids 100, 101, ...).
        #[arg(long, default_value_t = 2)]
        guilds: usize,
        /// Whether voice channels require DAVE end-to-end encryption (Discord today: required;
        /// a client without DAVE is closed with 4017).
        #[arg(long, value_enum, default_value_t = Dave::Required)]
        dave: Dave,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Ptt {
    Down,
    Up,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dave {
    Required,
    Optional,
    Off,
}

impl From<Dave> for voxboard_sim::DaveMode {
    fn from(d: Dave) -> Self {
        match d {
            Dave::Required => Self::Required,
            Dave::Optional => Self::Optional,
            Dave::Off => Self::Off,
        }
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            cli::attach_console();
            e.exit()
        }
    };
    if args.command.is_some() {
        cli::attach_console();
    }
    let result = match args.command {
        Some(Cmd::Play(play)) => {
            cli::init_logging();
            cli::play::run(*play)
        }
        Some(Cmd::Sim { guilds, dave }) => {
            cli::init_logging();
            cli::sim::run(guilds, dave.into())
        }
        Some(Cmd::Trigger { sound }) => {
            cli::init_logging();
            cli::control::trigger(&sound)
        }
        Some(Cmd::StopAll) => {
            cli::init_logging();
            cli::control::stop_all()
        }
        Some(Cmd::Ptt { state }) => {
            cli::init_logging();
            cli::control::push_to_talk(matches!(state, Ptt::Down))
        }
        Some(Cmd::Devices) => {
            cli::init_logging();
            cli::devices::run()
        }
        None => {
            let log = voxboard::ui::log::LogBuffer::default();
            voxboard::ui::log::init(&log);
            let exit_after = match args.exit_after {
                Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
                Some(_) => {
                    cli::attach_console();
                    eprintln!("error: --exit-after wants a positive number of seconds");
                    return ExitCode::from(2);
                }
                None => None,
            };
            voxboard::ui::run(voxboard::ui::RunOptions {
                demo: args.demo,
                demo_report: args.demo_report,
                exit_after,
                started,
                log,
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::attach_console();
            eprintln!("error: {e:#}");
            // The control commands' own codes (not running, no such sound, ambiguous).
            match e.downcast_ref::<cli::control::Exit>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}
