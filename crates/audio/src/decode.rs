//! Sound files → [`Clip`]s of 48 kHz stereo f32, ready for the mixer.
//!
//! symphonia reads wav, flac, ogg/vorbis and mp3; Ogg Opus (which symphonia demuxes but cannot
//! decode) goes through libopus. Input is untrusted: any byte sequence must give a clip or a
//! [`DecodeError`] that names the file and says what is wrong, never a panic.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use super::opus::OpusDecoder;
use super::resample::{self, ResampleError};
use super::{CHANNELS, SAMPLE_RATE};

/// Longest clip accepted. A soundboard plays effects and songs, not audiobooks; the limit keeps
/// one mistaken file from taking gigabytes (20 min of 48 kHz stereo f32 is about 460 MB).
pub const MAX_CLIP_SECONDS: u64 = 20 * 60;

/// The most a decode may buffer before conversion, in bytes of f32 samples at the file's own
/// rate and channel count. Duration alone does not bound memory: a few hundred KB of 8-channel
/// 384 kHz silence is 12 MB per second decoded. 20 minutes of 48 kHz stereo is 460 MB, so no
/// clip the duration limit allows is refused for size unless it is wider or faster than that.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// A decoded sound, in Voxboard's format: 48 kHz stereo interleaved f32.
#[derive(Clone, Debug)]
pub struct Clip {
    /// Interleaved L/R samples at 48 kHz. Shared, so playbacks never copy a clip.
    pub samples: Arc<[f32]>,
    /// Sample rate of the file, before resampling.
    pub source_rate: u32,
    /// Channels in the file, before mixing to stereo.
    pub source_channels: usize,
    /// Damaged packets the decoder skipped (each is a short gap); 0 for a healthy file.
    pub skipped_packets: usize,
}

impl Clip {
    /// Samples per channel (stereo frames) at 48 kHz.
    pub fn frames(&self) -> usize {
        self.samples.len() / CHANNELS
    }

    /// Playing time.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames() as f64 / f64::from(SAMPLE_RATE))
    }
}

/// Why a sound could not be loaded. Every variant names the file (its path, or the name given
/// to [`decode_bytes`]) so the message can be shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("{file} is empty (0 bytes)")]
    Empty { file: String },
    #[error("{file} is not a supported audio format (wav, flac, ogg vorbis/opus, mp3): {detail}")]
    Unsupported { file: String, detail: String },
    #[error("{file} contains no audio track")]
    NoAudioTrack { file: String },
    #[error("{file} is corrupt: {detail}")]
    Corrupt { file: String, detail: String },
    #[error("{file} contains no audio samples")]
    NoSamples { file: String },
    #[error("{file} is too long: more than {} minutes", MAX_CLIP_SECONDS / 60)]
    TooLong { file: String },
    #[error(
        "{file} is too large to load: {megabytes} MB decoded (at most {} MB)",
        MAX_DECODED_BYTES / (1024 * 1024)
    )]
    TooLarge { file: String, megabytes: u64 },
}

impl DecodeError {
    /// The file (or name) the error is about.
    pub fn file(&self) -> &str {
        match self {
            Self::Io { file, .. }
            | Self::Empty { file }
            | Self::Unsupported { file, .. }
            | Self::NoAudioTrack { file }
            | Self::Corrupt { file, .. }
            | Self::NoSamples { file }
            | Self::TooLong { file }
            | Self::TooLarge { file, .. } => file,
        }
    }
}

/// Decodes the sound file at `path` and converts it to 48 kHz stereo.
///
/// `progress` gets values in 0..=1 while decoding when the file states its length (wav, flac,
/// most ogg), and always 1.0 at the end. Meant to run off the engine thread.
pub fn decode_file(path: &Path, progress: &mut dyn FnMut(f32)) -> Result<Clip, DecodeError> {
    let file = path.display().to_string();
    let io_err = |source| DecodeError::Io {
        file: file.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(io::Error::other("it is a directory")));
    }
    if meta.len() == 0 {
        return Err(DecodeError::Empty { file });
    }
    let handle = std::fs::File::open(path).map_err(io_err)?;
    let ext = path.extension().and_then(|e| e.to_str());
    decode_source(&file, Box::new(handle), ext, progress)
}

/// Decodes a sound held in memory. `name` is used in errors and, through its extension
/// ("beep.mp3"), as a format hint.
pub fn decode_bytes(
    data: &[u8],
    name: &str,
    progress: &mut dyn FnMut(f32),
) -> Result<Clip, DecodeError> {
    if data.is_empty() {
        return Err(DecodeError::Empty {
            file: name.to_owned(),
        });
    }
    let ext = Path::new(name).extension().and_then(|e| e.to_str());
    decode_source(name, Box::new(io::Cursor::new(data)), ext, progress)
}

/// Raw decoder output before conversion: interleaved at the source rate and width.
struct Pcm {
    samples: Vec<f32>,
    rate: u32,
    channels: usize,
    /// Channels the file declares; differs from `channels` for mono Opus, decoded as stereo.
    file_channels: usize,
    skipped: usize,
}

/// Decodes with the third-party demuxers and codecs walled off: a hostile file that makes one
/// of them panic (fuzzing found a WAV header that overflows symphonia's block-align
/// arithmetic) is a corrupt file for that button, not a dead decode thread.
fn decode_source<'s>(
    file: &str,
    source: Box<dyn MediaSource + 's>,
    ext: Option<&str>,
    progress: &mut dyn FnMut(f32),
) -> Result<Clip, DecodeError> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_unguarded(file, source, ext, progress)
    }));
    decoded.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(DecodeError::Corrupt {
            file: file.to_owned(),
            detail: format!("the decoder gave up on it ({why})"),
        })
    })
}

fn decode_unguarded<'s>(
    file: &str,
    source: Box<dyn MediaSource + 's>,
    ext: Option<&str>,
    progress: &mut dyn FnMut(f32),
) -> Result<Clip, DecodeError> {
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    // Safety net: a parser bug on a hostile file must cost one sound, not the app. Nothing
    // from inside survives a panic (the reader and buffers are dropped), so unwinding is safe.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| probe_error(file, e))?;
        // Decoding gets 0..0.9 of the progress bar, resampling the rest.
        decode_track(file, format, &mut |p| progress(p * 0.9))
    }));
    let pcm = decoded.unwrap_or_else(|_| {
        Err(DecodeError::Corrupt {
            file: file.to_owned(),
            detail: "the decoder crashed on this data".to_owned(),
        })
    })?;
    let samples =
        resample::to_output_format(&pcm.samples, pcm.rate, pcm.channels).map_err(|e| match e {
            ResampleError::Rate(_) | ResampleError::Channels(_) => DecodeError::Unsupported {
                file: file.to_owned(),
                detail: e.to_string(),
            },
            ResampleError::Resampler(_) => DecodeError::Corrupt {
                file: file.to_owned(),
                detail: e.to_string(),
            },
        })?;
    progress(1.0);
    Ok(Clip {
        samples: samples.into(),
        source_rate: pcm.rate,
        source_channels: pcm.file_channels,
        skipped_packets: pcm.skipped,
    })
}

/// Turns a probe failure into words: symphonia says "unsupported" when no reader recognised
/// the data. Running out of data means a reader did recognise its header and then found the
/// file cut short or its audio frames unreadable.
fn probe_error(file: &str, e: SymphoniaError) -> DecodeError {
    let file = file.to_owned();
    match e {
        // symphonia's own text here ("core (probe): ...") means nothing to a user.
        SymphoniaError::Unsupported(_) => DecodeError::Unsupported {
            file,
            detail: "its contents match no known audio container".to_owned(),
        },
        SymphoniaError::IoError(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            DecodeError::Corrupt {
                file,
                detail: "the file ends before any readable audio (truncated or damaged)".to_owned(),
            }
        }
        SymphoniaError::IoError(source) => DecodeError::Io { file, source },
        other => DecodeError::Corrupt {
            file,
            detail: other.to_string(),
        },
    }
}

/// One of the two ways packets become samples.
enum Codec {
    Symphonia(Box<dyn symphonia::core::codecs::audio::AudioDecoder>),
    Opus(Box<OpusDecoder>),
}

fn decode_track(
    file: &str,
    mut format: Box<dyn FormatReader + '_>,
    progress: &mut dyn FnMut(f32),
) -> Result<Pcm, DecodeError> {
    let no_track = || DecodeError::NoAudioTrack {
        file: file.to_owned(),
    };
    let corrupt = |detail: String| DecodeError::Corrupt {
        file: file.to_owned(),
        detail,
    };
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(no_track)?;
    let track_id = track.id;
    let mut opus_pre_skip = track.delay.unwrap_or(0) as usize;
    let expected_frames = track.num_frames.filter(|&n| n > 0);
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(no_track)?
        .clone();
    let declared_channels = params
        .channels
        .as_ref()
        .map(|c| c.count())
        .filter(|&c| c > 0);
    let too_large = |bytes: u64| DecodeError::TooLarge {
        file: file.to_owned(),
        megabytes: bytes / (1024 * 1024),
    };
    // Where the container says how long it is, refuse a bomb before decoding any of it.
    if let (Some(frames), Some(channels)) = (expected_frames, declared_channels) {
        let bytes = frames.saturating_mul(channels as u64).saturating_mul(4);
        if bytes > MAX_DECODED_BYTES {
            return Err(too_large(bytes));
        }
    }

    let unsupported = |detail: String| DecodeError::Unsupported {
        file: file.to_owned(),
        detail,
    };
    let mut codec = if params.codec == CODEC_ID_OPUS {
        // Surround Opus is a multistream, which a plain decoder cannot read.
        if declared_channels.is_some_and(|c| c > CHANNELS) {
            return Err(unsupported(
                "Opus with more than two channels is not supported".to_owned(),
            ));
        }
        Codec::Opus(Box::new(
            OpusDecoder::new().map_err(|e| corrupt(e.to_string()))?,
        ))
    } else {
        let dec = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| match e {
                SymphoniaError::Unsupported(_) => unsupported(format!(
                    "its audio codec ({}) cannot be decoded",
                    params.codec
                )),
                other => corrupt(other.to_string()),
            })?;
        Codec::Symphonia(dec)
    };

    let mut samples: Vec<f32> = Vec::new();
    let mut scratch: Vec<f32> = Vec::new();
    let mut spec: Option<(u32, usize)> = None;
    let mut skipped = 0usize;
    let mut last_problem: Option<String> = None;
    let mut frames_done = 0u64;
    let mut last_reported = 0.0f32;
    // Consecutive container errors; bounded so a reader stuck on one spot cannot loop forever.
    let mut demux_errors = 0u32;
    const MAX_DEMUX_ERRORS: u32 = 64;

    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A truncated file ends early: keep what was decoded.
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            // A new chained stream starts; a soundboard clip is the first one.
            Err(SymphoniaError::ResetRequired) => break,
            // A damaged page or frame (e.g. an Ogg CRC mismatch): readers move past it, so
            // try the next one, but give up if they keep failing without progress.
            Err(SymphoniaError::DecodeError(msg)) if demux_errors < MAX_DEMUX_ERRORS => {
                demux_errors += 1;
                skipped += 1;
                last_problem = Some(msg.to_owned());
                continue;
            }
            Err(e) if samples.is_empty() => return Err(corrupt(e.to_string())),
            Err(e) => {
                tracing::warn!(file, error = %e, "stopped reading at a damaged part; keeping the audio before it");
                break;
            }
        };
        demux_errors = 0;
        if packet.track_id != track_id {
            continue;
        }
        scratch.clear();
        let got = match &mut codec {
            Codec::Symphonia(dec) => match dec.decode(&packet) {
                Ok(buf) => {
                    let got = (buf.spec().rate(), buf.spec().channels().count());
                    buf.copy_to_vec_interleaved::<f32>(&mut scratch);
                    Ok(got)
                }
                Err(e) => Err(e),
            },
            Codec::Opus(dec) => match dec.decode(&packet.data, &mut scratch) {
                Ok(n) => {
                    // The demuxer trims the final padding but leaves the encoder's pre-skip
                    // (the track's delay) in the first packets: drop both so the clip has its
                    // true length.
                    let pre = opus_pre_skip.min(n);
                    opus_pre_skip -= pre;
                    let start = (packet.trim_start.get() as usize).max(pre).min(n);
                    let end = n.saturating_sub(packet.trim_end.get() as usize).max(start);
                    scratch.truncate(end * CHANNELS);
                    scratch.drain(..start * CHANNELS);
                    Ok((SAMPLE_RATE, CHANNELS))
                }
                Err(e) => Err(SymphoniaError::DecodeError(opus_error_text(&e))),
            },
        };
        match got {
            Ok((rate, channels)) if rate > 0 && channels > 0 => {
                if spec.is_none() {
                    // Refuse absurd formats before buffering any of their audio.
                    if !(resample::MIN_RATE..=resample::MAX_RATE).contains(&rate) {
                        return Err(unsupported(ResampleError::Rate(rate).to_string()));
                    }
                    if channels > resample::MAX_CHANNELS {
                        return Err(unsupported(ResampleError::Channels(channels).to_string()));
                    }
                }
                if *spec.get_or_insert((rate, channels)) != (rate, channels) {
                    // Mid-stream format changes are rare and never what a soundboard wants.
                    skipped += 1;
                    last_problem = Some("the sample format changes mid-stream".to_owned());
                    continue;
                }
                let bytes = (samples.len() + scratch.len()) as u64 * 4;
                if bytes > MAX_DECODED_BYTES {
                    return Err(too_large(bytes));
                }
                samples.extend_from_slice(&scratch);
                frames_done += (scratch.len() / channels) as u64;
                if frames_done > MAX_CLIP_SECONDS * u64::from(rate) {
                    return Err(DecodeError::TooLong {
                        file: file.to_owned(),
                    });
                }
                if let Some(total) = expected_frames {
                    let p = (frames_done as f64 / total as f64).min(1.0) as f32;
                    if p - last_reported >= 0.01 {
                        last_reported = p;
                        progress(p);
                    }
                }
            }
            Ok(_) => skipped += 1,
            // Damaged packets are skipped: a glitch is better than no sound.
            Err(SymphoniaError::DecodeError(msg)) => {
                skipped += 1;
                last_problem = Some(msg.to_owned());
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => {
                if let Codec::Symphonia(dec) = &mut codec {
                    dec.reset();
                }
            }
            Err(e) => {
                skipped += 1;
                last_problem = Some(e.to_string());
            }
        }
    }

    let Some((rate, channels)) = spec.filter(|_| !samples.is_empty()) else {
        return Err(match last_problem {
            Some(problem) => corrupt(format!(
                "{skipped} damaged packet(s) and no playable audio (decoder: {problem})"
            )),
            None => DecodeError::NoSamples {
                file: file.to_owned(),
            },
        });
    };
    if skipped > 0 {
        tracing::warn!(
            file,
            skipped,
            problem = last_problem.as_deref().unwrap_or(""),
            "skipped damaged packets"
        );
    }
    let file_channels = match codec {
        Codec::Opus(_) => declared_channels.unwrap_or(channels),
        Codec::Symphonia(_) => channels,
    };
    Ok(Pcm {
        samples,
        rate,
        channels,
        file_channels,
        skipped,
    })
}

/// symphonia's DecodeError carries a `&'static str`; map the few Opus failures to fixed text.
fn opus_error_text(e: &super::opus::OpusError) -> &'static str {
    use audiopus::ErrorCode;
    match e {
        super::opus::OpusError::Codec(audiopus::Error::Opus(ErrorCode::InvalidPacket)) => {
            "invalid Opus packet"
        }
        super::opus::OpusError::Codec(audiopus::Error::Opus(ErrorCode::BufferTooSmall)) => {
            "Opus packet longer than 120 ms"
        }
        _ => "Opus decoding failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    const FIXTURES: [&str; 8] = [
        "sine1k_44k1_mono.wav",
        "sine1k_44k1_mono.flac",
        "sine1k_44k1_mono.ogg",
        "sine1k_44k1_mono.mp3",
        "sine1k_44k1_stereo_r1500.flac",
        "sine1k_44k1_stereo_r1500.ogg",
        "sine1k_44k1_stereo_r1500.mp3",
        "sine1k_48k_stereo_r1500.opus",
    ];

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    }

    /// Decodes `data` and checks the outcome is sane: finite samples, or an error naming it.
    fn check(data: &[u8], name: &str, what: &str) {
        let outcome = catch_unwind(AssertUnwindSafe(|| decode_bytes(data, name, &mut |_| {})));
        match outcome {
            Err(_) => panic!("decoder panicked on {what} ({} bytes)", data.len()),
            Ok(Ok(clip)) => {
                assert!(clip.frames() > 0, "{what}: an Ok clip must hold audio");
                assert!(
                    clip.samples.iter().all(|s| s.is_finite()),
                    "{what}: non-finite samples"
                );
            }
            Ok(Err(e)) => {
                assert_eq!(e.file(), name, "{what}");
                assert!(e.to_string().contains(name), "{what}: {e}");
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0001);
        // Magic numbers send the junk deep into each parser rather than failing the probe.
        let prefixes: [&[u8]; 7] = [
            b"",
            b"RIFF\x24\x08\x00\x00WAVEfmt ",
            b"fLaC",
            b"OggS\x00\x02",
            b"ID3\x03\x00",
            &[0xFF, 0xFB, 0x90, 0x64],
            b"\x1A\x45\xDF\xA3",
        ];
        for round in 0..400 {
            let len = rng.random_range(0..3000);
            let mut data = prefixes[round % prefixes.len()].to_vec();
            data.extend((0..len).map(|_| rng.random::<u8>()));
            for name in ["junk.wav", "junk.mp3", "junk.ogg", "junk"] {
                check(&data, name, &format!("random round {round} as {name}"));
            }
        }
    }

    #[test]
    fn truncated_and_damaged_files_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0002);
        for name in FIXTURES {
            let data = fixture(name);
            let mut cuts: Vec<usize> = (0..64).chain([100, 200, 500, 1000]).collect();
            cuts.extend((0..12).map(|_| rng.random_range(0..data.len())));
            for cut in cuts.into_iter().filter(|&c| c < data.len()) {
                check(&data[..cut], name, &format!("{name} cut at {cut}"));
            }
            for round in 0..40 {
                let mut bad = data.clone();
                for _ in 0..rng.random_range(1..40) {
                    let at = rng.random_range(0..bad.len());
                    bad[at] = rng.random();
                }
                check(&bad, name, &format!("{name} damaged, round {round}"));
            }
        }
    }

    #[test]
    fn clip_length_helpers_agree() {
        let clip = Clip {
            samples: vec![0.0; 2 * 48_000 + 2 * 24_000].into(),
            source_rate: 44_100,
            source_channels: 1,
            skipped_packets: 0,
        };
        assert_eq!(clip.frames(), 72_000);
        assert_eq!(clip.duration(), Duration::from_millis(1500));
    }
}
