//! Sound files → [`Clip`]s of 48 kHz stereo f32, ready for the mixer.
//!
//! symphonia reads wav, flac, ogg/vorbis and mp3; Ogg Opus (which symphonia demuxes but cannot
//! decode) goes through libopus. Input is untrusted: any byte sequence must give a clip or a
//! [`DecodeError`] that names the file and says what is wrong, never a panic.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use symphonia::core::io::MediaSource;

mod reader;

pub(crate) use self::reader::{Chunk, PcmReader};
use super::convert::Converter;
use super::resample::ResampleError;
use super::{CHANNELS, SAMPLE_RATE};

/// Longest clip accepted. A soundboard plays effects and songs, not audiobooks; the limit keeps
/// one mistaken file from taking gigabytes (20 min of 48 kHz stereo f32 is about 460 MB).
pub const MAX_CLIP_SECONDS: u64 = 20 * 60;

/// The most a decode may buffer before conversion, in bytes of f32 samples at the file's own
/// rate and channel count. Duration alone does not bound memory: a few hundred KB of 8-channel
/// 384 kHz silence is 12 MB per second decoded. 20 minutes of 48 kHz stereo is 460 MB, so no
/// clip the duration limit allows is refused for size unless it is wider or faster than that.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Longest clip the library streams from disk (music beds, hour-long ambience). Streaming
/// holds only a ring of audio whatever the length; the limit bounds the one measuring pass.
pub const MAX_STREAM_SECONDS: u64 = 4 * 60 * 60;

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
    #[error("{file} is too long: more than {minutes} minutes")]
    TooLong { file: String, minutes: u64 },
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
            | Self::TooLong { file, .. }
            | Self::TooLarge { file, .. } => file,
        }
    }
}

/// Decodes the sound file at `path` and converts it to 48 kHz stereo.
///
/// `progress` gets values in 0..=1 while decoding when the file states its length (wav, flac,
/// most ogg), and always 1.0 at the end. Meant to run off the engine thread.
pub fn decode_file(path: &Path, progress: &mut dyn FnMut(f32)) -> Result<Clip, DecodeError> {
    let plan = Plan {
        stream_above_bytes: None,
        analyse: false,
    };
    match load_file(path, plan, progress)?.0 {
        Decoded::Memory(clip) => Ok(clip),
        // Only a plan with a streaming threshold makes long clips.
        Decoded::Long { .. } => Err(DecodeError::TooLong {
            file: path.display().to_string(),
            minutes: MAX_CLIP_SECONDS / 60,
        }),
    }
}

/// [`decode_file`] with a plan: the sound library's entry point.
pub(crate) fn load_file(
    path: &Path,
    plan: Plan,
    progress: &mut dyn FnMut(f32),
) -> Result<(Decoded, Option<Analysis>), DecodeError> {
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
    decode_planned(&file, Box::new(handle), ext, plan, progress)
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

/// How a decode keeps what it decodes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Output size (bytes of 48 kHz stereo f32) above which the clip is not kept in memory
    /// but measured for streaming; `None` keeps everything (with the in-memory limits).
    pub stream_above_bytes: Option<u64>,
    /// Measure loudness and the waveform on the way (in the same pass).
    pub analyse: bool,
}

/// What a decode made: the clip, or for a long one only its length (it streams from disk).
pub(crate) enum Decoded {
    Memory(Clip),
    Long {
        /// Exact 48 kHz frames the file converts to.
        frames: u64,
    },
}

/// Loudness and waveform measured during a decode.
pub(crate) struct Analysis {
    pub loudness: crate::loudness::Measurement,
    /// Only for long clips: in-memory ones compute theirs exactly from the samples.
    pub waveform: Option<crate::waveform::Waveform>,
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
    let plan = Plan {
        stream_above_bytes: None,
        analyse: false,
    };
    match decode_planned(file, source, ext, plan, progress)?.0 {
        Decoded::Memory(clip) => Ok(clip),
        // Only a plan with a streaming threshold makes long clips.
        Decoded::Long { .. } => Err(DecodeError::TooLong {
            file: file.to_owned(),
            minutes: MAX_CLIP_SECONDS / 60,
        }),
    }
}

/// [`decode_source`] with a plan.
fn decode_planned<'s>(
    file: &str,
    source: Box<dyn MediaSource + 's>,
    ext: Option<&str>,
    plan: Plan,
    progress: &mut dyn FnMut(f32),
) -> Result<(Decoded, Option<Analysis>), DecodeError> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_unguarded(file, source, ext, plan, progress)
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

/// Where converted audio goes: the clip's buffer while it may live in memory, and the meters.
struct Sink {
    /// `None` once the clip is known to be long (streamed).
    samples: Option<Vec<f32>>,
    meter: Option<crate::loudness::Meter>,
    waveform: Option<crate::waveform::WaveformBuilder>,
    stream_above: Option<u64>,
}

impl Sink {
    fn take(&mut self, chunk: &[f32]) {
        if let Some(meter) = self.meter.as_mut() {
            meter.push(chunk);
        }
        if let Some(w) = self.waveform.as_mut() {
            w.push(chunk);
        }
        if let Some(samples) = self.samples.as_mut() {
            let bytes = (samples.len() + chunk.len()) as u64 * 4;
            if self.stream_above.is_some_and(|limit| bytes > limit) {
                // Long after all (the header did not say): stream it rather than hold it.
                self.samples = None;
            } else {
                samples.extend_from_slice(chunk);
            }
        }
    }
}

fn decode_unguarded<'s>(
    file: &str,
    source: Box<dyn MediaSource + 's>,
    ext: Option<&str>,
    plan: Plan,
    progress: &mut dyn FnMut(f32),
) -> Result<(Decoded, Option<Analysis>), DecodeError> {
    let mut reader = PcmReader::open(file, source, ext)?;
    let too_large = |bytes: u64| DecodeError::TooLarge {
        file: file.to_owned(),
        megabytes: bytes / (1024 * 1024),
    };
    let expected = reader.expected_frames;
    // Output bytes the header promises (48 kHz stereo f32), where it says enough.
    let expected_out = expected
        .zip(reader.declared_rate)
        .map(|(f, r)| f.saturating_mul(u64::from(SAMPLE_RATE)) / u64::from(r) * 8);
    let long_from_header = plan
        .stream_above_bytes
        .zip(expected_out)
        .is_some_and(|(limit, out)| out > limit);
    // Held in memory, a decode must not be a bomb: refuse one from its header, before decoding
    // any of it. (Streamed audio is bounded by its ring, not by the file's width or rate.)
    if !long_from_header
        && let (Some(frames), Some(channels)) = (expected, reader.declared_channels)
    {
        let bytes = frames.saturating_mul(channels as u64).saturating_mul(4);
        if bytes > MAX_DECODED_BYTES {
            return Err(too_large(bytes));
        }
    }
    let mut sink = Sink {
        samples: (!long_from_header).then(|| {
            // Reserve what the header promises (and a frame for rounding), so the buffer never
            // doubles past it: with the `Arc` it becomes, at most ~2x the output.
            let reserve = expected_out.map_or(0, |b| b.min(MAX_DECODED_BYTES) / 4 + 64);
            Vec::with_capacity(reserve as usize)
        }),
        // In-memory clips get their exact waveform and per-100 ms loudness from the samples at
        // the end; measure on the way only where the clip may turn out long.
        meter: (plan.analyse && (long_from_header || expected_out.is_none()))
            .then(crate::loudness::Meter::default),
        waveform: (plan.analyse && (long_from_header || expected_out.is_none()))
            .then(crate::waveform::WaveformBuilder::default),
        stream_above: plan.stream_above_bytes,
    };
    let mut converter: Option<Converter> = None;
    let mut frames_done = 0u64;
    let mut last_reported = 0.0f32;
    let convert_error = |e: ResampleError| match e {
        ResampleError::Rate(_) | ResampleError::Channels(_) => DecodeError::Unsupported {
            file: file.to_owned(),
            detail: e.to_string(),
        },
        ResampleError::Resampler(_) => DecodeError::Corrupt {
            file: file.to_owned(),
            detail: e.to_string(),
        },
    };
    while let Some(Chunk {
        rate,
        channels,
        samples: chunk,
    }) = reader.next_chunk()?
    {
        let conv = match converter.as_mut() {
            Some(c) => c,
            None => converter.insert(Converter::new(rate, channels).map_err(convert_error)?),
        };
        frames_done += (chunk.len() / channels) as u64;
        if sink.samples.is_some() {
            let bytes = frames_done * channels as u64 * 4;
            if bytes > MAX_DECODED_BYTES {
                return Err(too_large(bytes));
            }
        }
        let limit = if sink.samples.is_some() {
            MAX_CLIP_SECONDS
        } else {
            MAX_STREAM_SECONDS
        };
        if frames_done > limit * u64::from(rate) {
            return Err(DecodeError::TooLong {
                file: file.to_owned(),
                minutes: limit / 60,
            });
        }
        conv.push(chunk, &mut |c| sink.take(c))
            .map_err(convert_error)?;
        if let Some(total) = expected {
            let p = (frames_done as f64 / total as f64).min(1.0) as f32;
            if p - last_reported >= 0.01 {
                last_reported = p;
                progress(p);
            }
        }
    }
    let (Some(conv), Some((rate, _))) = (converter, reader.spec()) else {
        return Err(DecodeError::NoSamples {
            file: file.to_owned(),
        });
    };
    let frames = conv.finish(&mut |c| sink.take(c)).map_err(convert_error)?;
    progress(1.0);
    let source_channels = reader.file_channels().unwrap_or(CHANNELS);
    let long = sink.samples.is_none();
    let analysis = sink.meter.map(|m| Analysis {
        loudness: m.finish(),
        waveform: sink.waveform.filter(|_| long).map(|w| w.finish()),
    });
    let decoded = match sink.samples {
        Some(samples) => Decoded::Memory(Clip {
            samples: samples.into(),
            source_rate: rate,
            source_channels,
            skipped_packets: reader.skipped,
        }),
        None => Decoded::Long { frames },
    };
    Ok((decoded, analysis))
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
