//! Peak memory of a big board: 500 sounds, among them 1-hour files (FLAC, MP3, Ogg Vorbis)
//! and a decompression bomb, loaded the way the app loads them (every sound preloaded into a
//! default `SoundLibrary`), then a few long ones played together with short ones through the
//! mixer's cursors, as the engine's tick does. Prints the process's peak RSS (VmHWM).
//!
//! ```text
//! cargo run --release -p voxboard-audio --example board_rss [-- DIR]
//! ```
//!
//! The files are made with `sox` into DIR (kept, so a second run skips that) or a temporary
//! directory (removed). About 150 MB of disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use voxboard_audio::library::{LibraryConfig, SoundLibrary};
use voxboard_audio::mixer::{Cursor, add_frame, advance};
use voxboard_audio::shaping::Shape;
use voxboard_audio::stream::Source;
use voxboard_audio::{FRAME_LEN, SAMPLE_RATE};

/// Goal from issue 10: a 500-sound board with hour-long files stays under this.
const CEILING_MB: f64 = 400.0;

fn main() {
    let kept = std::env::args().nth(1).map(PathBuf::from);
    let temp = tempdir();
    let dir = kept.clone().unwrap_or_else(|| temp.clone());
    std::fs::create_dir_all(&dir).expect("create the board directory");
    let files = make_board(&dir);
    println!("after generating: {}", memory());

    let started = Instant::now();
    let lib = SoundLibrary::new(LibraryConfig::default());
    let ids: Vec<_> = files.iter().map(|p| lib.add(p.clone())).collect();
    lib.preload(&ids);
    let (mut ready, mut failed, mut streamed) = (0, Vec::new(), Vec::new());
    for &id in &ids {
        match lib.wait_ready(id, Duration::from_secs(900)) {
            Ok(Source::Stream(clip)) => {
                ready += 1;
                streamed.push((id, clip));
            }
            Ok(Source::Memory(_)) => ready += 1,
            Err(e) => failed.push(e),
        }
    }
    let load_time = started.elapsed();
    let stats = lib.stats();
    println!(
        "loaded {} sounds in {:.1} s: {ready} ready ({} streamed), {} failed; cache {} clips, {:.0} MB, {} evictions",
        ids.len(),
        load_time.as_secs_f64(),
        streamed.len(),
        failed.len(),
        stats.cached_clips,
        stats.cached_bytes as f64 / 1e6,
        stats.evictions
    );
    for e in &failed {
        println!("  failed: {e}");
    }
    println!("after loading: {}", memory());

    // Three long ones and a handful of short ones at once, for a minute of mix.
    let mut cursors: Vec<Cursor> = streamed
        .iter()
        .take(3)
        .map(|(_, clip)| Cursor::open(Source::Stream(clip.clone()), 0.3, false, &Shape::default()))
        .collect();
    // Eight short ones still in the cache (the most recently loaded), looped.
    let short = ids
        .iter()
        .rev()
        .filter_map(|&id| lib.get(id).filter(|s| s.samples().is_some()))
        .take(8);
    for source in short.collect::<Vec<_>>() {
        cursors.push(Cursor::open(source, 0.3, true, &Shape::default()));
    }
    let mut out = vec![0.0f32; FRAME_LEN];
    let ticks = 60 * SAMPLE_RATE as usize / (FRAME_LEN / 2);
    for _ in 0..ticks {
        out.fill(0.0);
        for c in &mut cursors {
            c.load();
            add_frame(&mut out, c, 1.0);
        }
        cursors.retain_mut(advance);
        // Roughly realtime x10: the streams' threads keep their rings full.
        std::thread::sleep(Duration::from_millis(2));
    }
    let underruns: u64 = cursors
        .iter()
        .filter_map(|c| c.stream().map(|s| s.underruns))
        .sum();
    println!(
        "played {} sounds ({} streamed) for 60 s of mix, {underruns} underruns",
        cursors.len(),
        cursors.iter().filter(|c| c.stream().is_some()).count()
    );
    let peak = peak_mb();
    println!("after playing: {}", memory());
    println!(
        "PEAK RSS {peak:.0} MB (ceiling {CEILING_MB:.0} MB): {}",
        if peak <= CEILING_MB { "ok" } else { "OVER" }
    );
    drop(cursors);
    drop(lib);
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    if peak > CEILING_MB {
        std::process::exit(1);
    }
}

/// 500 files: three 1-hour files, the bomb, ten one-minute clips, and 486 short effects.
fn make_board(dir: &Path) -> Vec<PathBuf> {
    let hour = [
        ("hour.flac", vec!["-r", "44100", "-c", "1", "-b", "16"]),
        ("hour.mp3", vec!["-r", "44100", "-c", "2", "-C", "64"]),
        ("hour.ogg", vec!["-r", "48000", "-c", "2", "-C", "0"]),
    ];
    let mut files = Vec::new();
    for (name, format) in hour {
        files.push(sox(dir, name, &format, "3600", "sine 220 gain -12"));
    }
    let bomb = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bomb_8ch_384k_45s.flac");
    files.push(bomb);
    for i in 0..10 {
        let name = format!("minute-{i}.flac");
        let tone = format!("sine {} gain -12", 300 + 50 * i);
        files.push(sox(dir, &name, &["-r", "44100", "-c", "2"], "60", &tone));
    }
    let shorts: Vec<PathBuf> = (0..6)
        .map(|i| {
            let name = format!("fx-{i}.wav");
            let secs = format!("{}", 0.5 + i as f64);
            let tone = format!("sine {} gain -6", 500 + 100 * i);
            sox(dir, &name, &["-r", "44100", "-c", "2"], &secs, &tone)
        })
        .collect();
    for i in 0..486 {
        // Each board sound is its own file, as on a real board.
        let path = dir.join(format!("sound-{i:03}.wav"));
        if !path.exists() {
            std::fs::copy(&shorts[i % shorts.len()], &path).expect("copy a short sound");
        }
        files.push(path);
    }
    files
}

/// Makes `name` with sox unless it exists.
fn sox(dir: &Path, name: &str, format: &[&str], seconds: &str, synth: &str) -> PathBuf {
    let path = dir.join(name);
    if path.exists() {
        return path;
    }
    let mut args = vec!["-n"];
    args.extend_from_slice(format);
    let out = path.to_string_lossy().into_owned();
    args.push(&out);
    args.extend(["synth", seconds]);
    args.extend(synth.split(' '));
    let status = Command::new("sox")
        .args(&args)
        .status()
        .expect("sox is needed to make the board's files");
    assert!(status.success(), "sox {args:?} failed");
    path
}

fn tempdir() -> PathBuf {
    std::env::temp_dir().join(format!("voxboard-board-rss-{}", std::process::id()))
}

fn status_kb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .expect("a VmHWM/VmRSS line")
}

fn peak_mb() -> f64 {
    status_kb("VmHWM:") / 1024.0
}

fn memory() -> String {
    format!(
        "RSS {:.0} MB, peak {:.0} MB",
        status_kb("VmRSS:") / 1024.0,
        peak_mb()
    )
}
