//! `voxboard --demo`: the whole app with no token. An embedded simulator plays Discord; the
//! board is built from the bundled sounds in a throwaway config dir (the user's own board is
//! never touched); both demo guilds are joined. With `--demo-report PATH`, what each simulated
//! listener heard is written there as JSON on exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::board::Board;
use crate::board::store::Store;
use voxboard_audio::analysis::dominant_frequency;
use voxboard_sim::{ChannelKind, Simulator, demo_config};

pub struct Demo {
    pub sim: Simulator,
    report: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts the simulator and writes the demo board into a temp config dir.
    pub fn start(report: Option<PathBuf>) -> anyhow::Result<(Demo, Store)> {
        let sim = Simulator::start(demo_config()).context("could not start the simulator")?;
        let dir = tempfile::Builder::new()
            .prefix("voxboard-demo-")
            .tempdir()
            .context("could not make a temp config dir")?;
        let store = Store::new(dir.path());
        let mut board = Board::default();
        board.tabs[0].name = "Demo".into();
        board.settings.gateway_url = Some(sim.gateway_url());
        board.settings.rest_url = Some(sim.rest_url());
        for g in &sim.config().guilds {
            if let Some(c) = g.channels.iter().find(|c| c.kind == ChannelKind::Voice) {
                board.settings.connections.insert(g.id, c.id);
            }
        }
        let sounds = bundled_sounds();
        if sounds.is_empty() {
            tracing::warn!("no bundled sounds found (assets/sounds)");
        }
        for (i, path) in sounds.into_iter().enumerate() {
            let id = board.add_sound(0, path);
            if i < 8
                && let Some(s) = board.sound_mut(id)
            {
                s.hotkey = format!("Alt+{}", i + 1);
            }
        }
        store
            .save(&board)
            .context("could not write the demo board")?;
        Ok((
            Demo {
                sim,
                report,
                _dir: dir,
            },
            store,
        ))
    }

    /// Writes what each listener heard (if a report path was given).
    pub fn write_report(&self, first_frame: Option<Duration>) -> anyhow::Result<()> {
        let Some(path) = &self.report else {
            return Ok(());
        };
        let guilds: Vec<serde_json::Value> = self
            .sim
            .config()
            .guilds
            .iter()
            .map(|g| {
                let heard = self.sim.heard(g.id);
                let pcm = heard.pcm_mono();
                let frames = heard.audio_frames();
                serde_json::json!({
                    "guild_id": g.id,
                    "name": g.name,
                    "audio_frames": frames,
                    "seconds": frames as f64 * 0.02,
                    "dominant_frequency_hz": dominant_frequency(&pcm, 48_000, 40.0, 8_000.0),
                })
            })
            .collect();
        let violations: Vec<serde_json::Value> = self
            .sim
            .violations()
            .into_iter()
            .map(
                |v| serde_json::json!({"guild_id": v.guild_id, "rule": v.rule, "detail": v.detail}),
            )
            .collect();
        let report = serde_json::json!({
            "guilds": guilds,
            "violations": violations,
            "first_frame_ms": first_frame.map(|d| d.as_millis() as u64),
        });
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// The bundled sounds, sorted by name. Looks next to the binary (…/target/*/voxboard →
/// …/assets/sounds), in the current dir, and in the source tree it was built from.
pub fn bundled_sounds() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("VOXBOARD_ASSETS") {
        candidates.push(PathBuf::from(dir).join("sounds"));
    }
    if let Ok(exe) = std::env::current_exe() {
        for up in exe.ancestors().skip(1).take(4) {
            candidates.push(up.join("assets/sounds"));
        }
    }
    candidates.push(PathBuf::from("assets/sounds"));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sounds"));
    let Some(dir) = candidates.into_iter().find(|d| d.is_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "wav" | "mp3" | "ogg" | "flac" | "opus"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
