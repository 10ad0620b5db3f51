//! The desktop app (eframe/egui): a board of sound buttons, a card per guild connection,
//! settings and a log. Panels are small structs with a `ui()` method; [`core::Core`] holds the
//! state they share. The UI never blocks on the engine, the network, the disk or the keyring.

pub mod app;
pub mod audio_devices;
pub mod board_panel;
pub mod connections;
pub mod core;
pub mod demo;
pub mod edit_dialog;
pub mod log;
pub mod probe;
pub mod routing_panel;
pub mod settings_panel;
pub mod style;
pub mod token;
pub mod trim_editor;
pub mod waveform_view;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use app::{AppConfig, View, VoxApp};

use crate::board::store::Store;
use voxboard_sim::SimConfig;

/// How the GUI was asked to run.
pub struct RunOptions {
    pub demo: bool,
    pub demo_report: Option<PathBuf>,
    pub exit_after: Option<Duration>,
    pub started: Instant,
    pub log: log::LogBuffer,
}

/// Opens the window and runs until it is closed.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let (store, token, demo) = if opts.demo {
        let (demo, store) = demo::Demo::start(opts.demo_report.clone())?;
        (
            store,
            token::TokenState::demo(SimConfig::TEST_TOKEN),
            Some(demo),
        )
    } else {
        (Store::from_env(), token::TokenState::lookup(true), None)
    };
    let config = AppConfig {
        store,
        token,
        global_hotkeys: true,
        exit_after: opts.exit_after,
        demo,
        log: opts.log,
        library: Default::default(),
        started: opts.started,
        // The demo's board is new in a temp dir, so its key is a throwaway one; its runtime
        // file is its own, so a real app running beside it stays the one CLIs find first.
        api: Some(crate::api::ApiOptions {
            instance: if opts.demo {
                crate::api::runtime_file::Instance::Demo
            } else {
                crate::api::runtime_file::Instance::App
            },
            ..crate::api::ApiOptions::from_env()
        }),
    };
    let native = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title(if opts.demo {
                "Voxboard — demo"
            } else {
                "Voxboard"
            })
            .with_app_id("voxboard")
            .with_inner_size([1200.0, 760.0])
            .with_min_inner_size([760.0, 480.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    let app = VoxApp::new(config);
    eframe::run_native("Voxboard", native, Box::new(move |_cc| Ok(Box::new(app))))
        .map_err(|e| anyhow::anyhow!("the window could not open: {e}"))
}
