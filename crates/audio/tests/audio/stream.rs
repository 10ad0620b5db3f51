//! Long clips: measured in one pass at load, never held decoded, streamed with the same
//! samples an in-memory decode gives, and a clear error when the file fails under them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use voxboard_audio::decode::decode_file;
use voxboard_audio::library::{LibraryConfig, SoundLibrary, SoundState};
use voxboard_audio::loudness;
use voxboard_audio::shaping::Window;
use voxboard_audio::stream::{LongClip, Source, StreamReader};
use voxboard_audio::waveform::{BUCKETS, Waveform};

const WAIT: Duration = Duration::from_secs(60);

/// `seconds` of 44.1 kHz mono 16-bit wav: a 440 Hz tone whose level steps up each second,
/// so loudness, waveform and order all have something to see.
fn stepped_wav(dir: &Path, name: &str, seconds: usize) -> PathBuf {
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
    for i in 0..seconds * 44_100 {
        let amp = 0.1 + 0.8 * (i / 44_100) as f32 / seconds as f32;
        let s = amp * (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin();
        w.write_sample((s * 32767.0).round() as i16).expect("write");
    }
    w.finalize().expect("finalize wav");
    path
}

/// Reads a stream to its end (waiting on the decode-ahead thread, never on a timer).
fn read_all(mut reader: StreamReader, limit: usize) -> (Vec<f32>, Option<String>) {
    let mut out = Vec::new();
    let mut buf = vec![0.0f32; 4_096];
    let deadline = Instant::now() + WAIT;
    loop {
        let n = reader.pop(&mut buf);
        out.extend_from_slice(&buf[..n]);
        if n == 0 {
            if reader.is_finished() {
                return (out, reader.error().map(str::to_owned));
            }
            assert!(Instant::now() < deadline, "stream stalled at {}", out.len());
            assert!(out.len() <= limit, "stream ran past {limit}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn a_long_clip_is_measured_in_one_pass_and_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = stepped_wav(dir.path(), "bed.wav", 6);
    let whole = decode_file(&path, &mut |_| {}).expect("decodes");
    // Anything over one second of decoded audio streams.
    let lib = SoundLibrary::new(LibraryConfig {
        stream_above_bytes: 48_000 * 2 * 4,
        ..LibraryConfig::default()
    });
    let id = lib.add(path.clone());
    let source = lib.wait_ready(id, WAIT).expect("loads");
    let Source::Stream(clip) = &source else {
        panic!("a six-second clip over a one-second limit must stream: {source:?}");
    };
    assert_eq!(clip.frames, whole.frames(), "exact length from the scan");
    assert_eq!(clip.path, path);
    assert_eq!(lib.stats().cached_bytes, 0, "nothing decoded is kept");
    assert!(
        matches!(lib.state(id), Some(SoundState::Ready { duration, .. }) if duration == whole.duration())
    );
    // The one-pass measurements agree with the whole-buffer ones.
    let streamed = lib
        .loudness(id, &voxboard_audio::shaping::Shape::default())
        .expect("measured");
    let full = loudness::measure(&whole.samples).expect("meter");
    let (a, b) = (streamed.lufs.expect("lufs"), full.lufs.expect("lufs"));
    assert!((a - b).abs() < 0.01, "{a} vs {b} LUFS");
    assert!((streamed.true_peak - full.true_peak).abs() < 1e-4);
    let wave = lib.waveform(id).expect("waveform");
    let exact = Waveform::compute(&whole.samples);
    assert_eq!(wave.frames, exact.frames);
    assert_eq!(wave.peaks.len(), BUCKETS);
    let top = |w: &Waveform| w.peaks.iter().fold(0.0f32, |m, p| m.max(p.1));
    assert!((top(&wave) - top(&exact)).abs() < 1e-6);
    // The stream plays what an in-memory decode holds, sample for sample.
    let (got, error) = read_all(
        StreamReader::open(clip, Window::whole(source.len()), false),
        source.len(),
    );
    assert_eq!(error, None);
    assert_eq!(got.len(), whole.samples.len());
    let worst = got
        .iter()
        .zip(whole.samples.iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 1e-6, "differs by {worst}");
    // Short clips stay in memory under the same library.
    let short = lib.add(stepped_wav(dir.path(), "blip.wav", 1));
    let blip = lib.wait_ready(short, WAIT).expect("loads");
    assert!(blip.samples().is_some(), "{blip:?}");
}

#[test]
fn a_looped_trimmed_stream_goes_round_its_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = stepped_wav(dir.path(), "loop.wav", 3);
    let whole = decode_file(&path, &mut |_| {}).expect("decodes");
    let clip = LongClip {
        path,
        frames: whole.frames(),
    };
    let window = Window {
        start: 48_000 * 2,
        end: 72_000 * 2,
        fade_in: 0,
        fade_out: 0,
    };
    let mut reader = StreamReader::open(&clip, window, true);
    let want: Vec<f32> = whole.samples[window.start..window.end]
        .iter()
        .chain(&whole.samples[window.start..window.end])
        .copied()
        .collect();
    let mut got = vec![0.0f32; want.len()];
    let mut filled = 0;
    let deadline = Instant::now() + WAIT;
    while filled < got.len() {
        assert!(Instant::now() < deadline, "stalled at {filled}");
        let n = reader.pop(&mut got[filled..]);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        filled += n;
    }
    assert!(!reader.is_finished(), "a loop does not end by itself");
    assert_eq!(got, want, "the window, twice, seamlessly");
}

#[test]
fn a_file_damaged_after_loading_ends_its_stream_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = stepped_wav(dir.path(), "gone.wav", 4);
    let frames = decode_file(&path, &mut |_| {}).expect("decodes").frames();
    let clip = LongClip {
        path: path.clone(),
        frames,
    };
    // Cut to one second (44-byte header, 2 bytes a frame).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(44 + 44_100 * 2).expect("truncate");
    drop(file);
    let (got, error) = read_all(
        StreamReader::open(&clip, Window::whole(frames * 2), false),
        frames * 2,
    );
    assert_eq!(got.len() / 2, 48_000, "the second that is left");
    let error = error.expect("a reason");
    assert!(
        error.contains("gone.wav") && error.contains("3.0 s early"),
        "{error}"
    );
    // Garbage instead of a sound file: the reason the decoder gives, no panic.
    std::fs::write(&path, vec![0x5a; 10_000]).expect("overwrite");
    let (got, error) = read_all(
        StreamReader::open(&clip, Window::whole(frames * 2), false),
        frames * 2,
    );
    assert!(got.is_empty());
    assert!(error.expect("a reason").contains("gone.wav"));
    // Gone: an I/O error naming the file.
    std::fs::remove_file(&path).expect("remove");
    let (_, error) = read_all(
        StreamReader::open(&clip, Window::whole(frames * 2), false),
        frames * 2,
    );
    assert!(error.expect("a reason").contains("cannot read"));
}

/// The decompression bomb's samples would be held in memory (45 s is under the streaming
/// limit), so the library refuses it from the header as `decode_file` does.
#[test]
fn the_library_still_refuses_a_decompression_bomb() {
    let lib = SoundLibrary::new(LibraryConfig::default());
    let id = lib
        .add(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bomb_8ch_384k_45s.flac"));
    let err = lib.wait_ready(id, WAIT).expect_err("refused");
    assert!(err.contains("too large to load"), "{err}");
}
