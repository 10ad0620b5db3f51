//! Decoding real files: every supported format, odd wav layouts made with hound, and the
//! errors a user sees for files that are not sound.

use std::f32::consts::PI;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voxboard_audio::analysis::{channel, dominant_frequency, max_step, rms};
use voxboard_audio::decode::{Clip, DecodeError, decode_bytes, decode_file};

/// One 20 ms frame: the tolerance on durations.
const FRAME: Duration = Duration::from_millis(20);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn decode(path: &Path) -> Clip {
    decode_file(path, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
}

/// The steady middle of a channel (edges hold codec start-up and fade effects).
fn middle(clip: &Clip, ch: usize) -> Vec<f32> {
    let side = channel(&clip.samples, 2, ch);
    let cut = side.len() / 10;
    side[cut..side.len() - cut].to_vec()
}

fn assert_tone(clip: &Clip, ch: usize, freq: f32, what: &str) {
    let f = dominant_frequency(&middle(clip, ch), 48_000, 20.0, 20_000.0);
    assert!(
        (f - freq).abs() <= 2.0,
        "{what} channel {ch}: {f} Hz, wanted {freq}"
    );
}

fn assert_duration(clip: &Clip, want: Duration, what: &str) {
    let got = clip.duration();
    assert!(
        got.abs_diff(want) <= FRAME,
        "{what}: {got:?}, wanted {want:?}"
    );
    assert_eq!(clip.samples.len(), clip.frames() * 2);
}

#[test]
fn every_format_decodes_mono_fixtures() {
    for ext in ["wav", "flac", "ogg", "mp3"] {
        let path = fixture(&format!("sine1k_44k1_mono.{ext}"));
        let clip = decode(&path);
        assert_eq!(
            (clip.source_rate, clip.source_channels),
            (44_100, 1),
            "{ext}"
        );
        assert_duration(&clip, Duration::from_millis(500), ext);
        assert_tone(&clip, 0, 1000.0, ext);
        assert_tone(&clip, 1, 1000.0, ext);
        // sox wrote amplitude 0.5: rms 0.354. Lossy codecs may move it a little.
        let level = rms(&middle(&clip, 0));
        assert!((level - 0.3536).abs() < 0.035, "{ext}: rms {level}");
        eprintln!(
            "{ext} mono: {:?}, {} frames, rms {level:.4}",
            clip.duration(),
            clip.frames()
        );
    }
}

#[test]
fn every_format_keeps_stereo_sides_apart() {
    // Left 1 kHz, right 1.5 kHz: a swap or a mix-down would show.
    for name in [
        "sine1k_44k1_stereo_r1500.flac",
        "sine1k_44k1_stereo_r1500.ogg",
        "sine1k_44k1_stereo_r1500.mp3",
        "sine1k_48k_stereo_r1500.opus",
    ] {
        let clip = decode(&fixture(name));
        assert_eq!(clip.source_channels, 2, "{name}");
        assert_duration(&clip, Duration::from_millis(500), name);
        assert_tone(&clip, 0, 1000.0, name);
        assert_tone(&clip, 1, 1500.0, name);
        eprintln!(
            "{name}: {:?} at {} Hz source",
            clip.duration(),
            clip.source_rate
        );
    }
}

#[test]
fn bytes_in_memory_decode_like_files() {
    let path = fixture("sine1k_44k1_mono.flac");
    let data = std::fs::read(&path).expect("fixture");
    let from_bytes = decode_bytes(&data, "clip.flac", &mut |_| {}).expect("bytes");
    let from_file = decode(&path);
    assert_eq!(from_bytes.samples, from_file.samples);
}

/// Writes a wav with hound: `freqs[c]` Hz on channel `c`, amplitude 0.5.
fn write_wav(path: &Path, spec: hound::WavSpec, freqs: &[f32], secs: f32) {
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let frames = (secs * spec.sample_rate as f32) as usize;
    for i in 0..frames {
        for &f in freqs {
            let s = 0.5 * (2.0 * PI * f * i as f32 / spec.sample_rate as f32).sin();
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(s).expect("write"),
                (_, 8) => w.write_sample((s * 127.0) as i8).expect("write"),
                (_, 16) => w.write_sample((s * 32767.0) as i16).expect("write"),
                (_, bits) => w
                    .write_sample((s * ((1 << (bits - 1)) - 1) as f32) as i32)
                    .expect("write"),
            }
        }
    }
    w.finalize().expect("finalize");
}

fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

#[test]
fn wav_layouts_from_hound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "s16_22k05_stereo",
            spec(2, 22_050, 16, false),
            vec![440.0, 880.0],
        ),
        ("s24_96k_mono", spec(1, 96_000, 24, false), vec![1000.0]),
        (
            "f32_48k_stereo",
            spec(2, 48_000, 32, true),
            vec![700.0, 300.0],
        ),
        ("u8_8k_mono", spec(1, 8_000, 8, false), vec![500.0]),
        (
            "s16_16k_stereo",
            spec(2, 16_000, 16, false),
            vec![1000.0, 2000.0],
        ),
    ];
    for (name, spec, freqs) in cases {
        let path = dir.path().join(format!("{name}.wav"));
        write_wav(&path, spec, &freqs, 0.75);
        let clip = decode(&path);
        assert_eq!(clip.source_rate, spec.sample_rate, "{name}");
        assert_eq!(clip.source_channels, freqs.len(), "{name}");
        assert_duration(&clip, Duration::from_millis(750), name);
        for side in 0..2 {
            assert_tone(&clip, side, freqs[side.min(freqs.len() - 1)], name);
        }
        let inner = middle(&clip, 0);
        assert!(max_step(&inner) < 0.2, "{name}: click {}", max_step(&inner));
    }
}

#[test]
fn surround_wav_is_mixed_to_stereo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("five_one.wav");
    // FL 600 Hz, FR 900 Hz, the rest silent except the LFE, which must not leak in.
    write_wav(
        &path,
        spec(6, 44_100, 16, false),
        &[600.0, 900.0, 0.0, 50.0, 0.0, 0.0],
        0.5,
    );
    let clip = decode(&path);
    assert_eq!(clip.source_channels, 6);
    assert_tone(&clip, 0, 600.0, "5.1");
    assert_tone(&clip, 1, 900.0, "5.1");
    assert!(clip.samples.iter().all(|s| s.abs() <= 1.0));
}

#[test]
fn progress_rises_to_one() {
    let mut seen = Vec::new();
    decode_file(&fixture("sine1k_44k1_mono.wav"), &mut |p| seen.push(p)).expect("decode");
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(1.0));
    assert!(seen.iter().all(|p| (0.0..=1.0).contains(p)));
}

/// The message names the file and says what is wrong in the user's words.
fn assert_error(err: DecodeError, path: &Path, words: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message must name the file: {msg}"
    );
    assert!(msg.contains(words), "expected {words:?} in: {msg}");
    assert_eq!(err.file(), path.display().to_string());
    eprintln!("{msg}");
}

#[test]
fn files_that_are_not_sound_give_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n);

    std::fs::write(p("zero.wav"), b"").expect("write");
    let e = decode_file(&p("zero.wav"), &mut |_| {}).expect_err("zero bytes");
    assert!(matches!(e, DecodeError::Empty { .. }), "{e:?}");
    assert_error(e, &p("zero.wav"), "empty (0 bytes)");

    // A valid wav header with no audio in it.
    hound::WavWriter::create(p("silent_header.wav"), spec(2, 44_100, 16, false))
        .expect("create")
        .finalize()
        .expect("finalize");
    let e = decode_file(&p("silent_header.wav"), &mut |_| {}).expect_err("no frames");
    assert!(matches!(e, DecodeError::NoSamples { .. }), "{e:?}");
    assert_error(e, &p("silent_header.wav"), "no audio samples");

    std::fs::write(
        p("notes.mp3"),
        "These are my notes, not a song.\nLine two of the notes.\n".repeat(40),
    )
    .expect("write");
    let e = decode_file(&p("notes.mp3"), &mut |_| {}).expect_err("text");
    assert!(matches!(e, DecodeError::Unsupported { .. }), "{e:?}");
    assert_error(e, &p("notes.mp3"), "not a supported audio format");

    let e = decode_file(&p("missing.ogg"), &mut |_| {}).expect_err("missing");
    assert!(matches!(e, DecodeError::Io { .. }), "{e:?}");
    assert_error(e, &p("missing.ogg"), "cannot read");

    let e = decode_file(dir.path(), &mut |_| {}).expect_err("directory");
    assert_error(e, dir.path(), "directory");
}

#[test]
fn corrupt_audio_data_is_reported_as_corrupt() {
    // Keep the FLAC header (stream info) but overwrite every audio frame with junk: the
    // container is recognised, yet no packet decodes.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut data = std::fs::read(fixture("sine1k_44k1_mono.flac")).expect("fixture");
    let header = flac_header_len(&data).expect("flac metadata");
    let mut x = 0x9E37_79B9u32;
    for b in &mut data[header..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let path = dir.path().join("broken.flac");
    std::fs::write(&path, &data).expect("write");
    let e = decode_file(&path, &mut |_| {}).expect_err("corrupt");
    assert!(matches!(e, DecodeError::Corrupt { .. }), "{e:?}");
    assert_error(e, &path, "is corrupt");
}

/// Length of the "fLaC" marker plus all metadata blocks.
fn flac_header_len(data: &[u8]) -> Option<usize> {
    if data.get(..4)? != b"fLaC" {
        return None;
    }
    let mut pos = 4;
    loop {
        let head = data.get(pos..pos + 4)?;
        let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
        pos += 4 + len;
        if head[0] & 0x80 != 0 {
            return Some(pos);
        }
    }
}

#[test]
fn damaged_packets_are_skipped_and_counted() {
    // Scramble 400 bytes a third of the way into an MP3 (no CRC, so the damage reaches the
    // decoder): the broken frames are skipped and counted, the rest still plays.
    let dir = tempfile::tempdir().expect("tempdir");
    let healthy_path = fixture("sine1k_44k1_mono.mp3");
    let mut data = std::fs::read(&healthy_path).expect("fixture");
    let at = data.len() * 3 / 10;
    for b in &mut data[at..at + 400] {
        *b ^= 0x33;
    }
    let path = dir.path().join("scratched.mp3");
    std::fs::write(&path, &data).expect("write");
    let clip = decode(&path);
    let healthy = decode(&healthy_path);
    assert_eq!(healthy.skipped_packets, 0);
    assert!(clip.skipped_packets > 0, "no packet was reported skipped");
    assert!(clip.frames() < healthy.frames());
    assert!(
        clip.duration() > Duration::from_millis(300),
        "{:?}",
        clip.duration()
    );
    assert_tone(&clip, 0, 1000.0, "scratched mp3");
    eprintln!(
        "scratched mp3: {} packet(s) skipped, {:?} left",
        clip.skipped_packets,
        clip.duration()
    );
}

#[test]
fn absurd_sample_rates_are_unsupported_not_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("slow.wav");
    write_wav(&path, spec(1, 1_000, 16, false), &[100.0], 2.0);
    let e = decode_file(&path, &mut |_| {}).expect_err("1 kHz sample rate");
    assert!(matches!(e, DecodeError::Unsupported { .. }), "{e:?}");
    assert_error(e, &path, "sample rate 1000 Hz is not supported");
}

/// A decompression bomb: 146 KB of FLAC that is 45 s of 8-channel 384 kHz audio, 530 MB
/// decoded. Its length is fine; its size is not. It is refused from its header, before any of
/// it is decoded, with the reason in the error (and so on the sound's badge).
#[test]
fn a_decompression_bomb_is_refused_before_it_is_decoded() {
    let path = fixture("bomb_8ch_384k_45s.flac");
    assert!(std::fs::metadata(&path).unwrap().len() < 200_000);
    let mut progressed = false;
    let err = decode_file(&path, &mut |_| progressed = true).expect_err("too large to load");
    assert!(
        matches!(err, DecodeError::TooLarge { megabytes: 527, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("too large to load"), "{err}");
    assert!(!progressed, "refused from the header, before decoding");
}

/// Found by fuzzing (`fuzz/corpus/audio_decode/finding-riff-block-align-overflow`): a WAV
/// header whose block-align arithmetic overflows inside symphonia, which panics in debug
/// builds. It must be a corrupt file, never a panic out of the decoder.
#[test]
fn a_wav_header_that_overflows_the_demuxer_is_corrupt_not_a_panic() {
    let data = b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\xad\xb7\x03\x00\x00\x00\x00\x00\x00\x00\x04\x00\x20\x00data\xff\xff\xff\xff";
    let err = decode_bytes(data, "x.wav", &mut |_| {}).expect_err("not playable");
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err:?}");
}
