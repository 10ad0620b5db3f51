//! The packet loop: a container and codec turned into chunks of raw samples at the file's own
//! rate and width, one packet at a time. Decoding into memory and streaming from disk both
//! read through this, so they skip damaged packets and refuse absurd formats the same way.

use std::io;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use super::DecodeError;
use crate::opus::OpusDecoder;
use crate::resample::{self, ResampleError};
use crate::{CHANNELS, SAMPLE_RATE};

/// One of the two ways packets become samples.
enum Codec {
    Symphonia(Box<dyn symphonia::core::codecs::audio::AudioDecoder>),
    Opus(Box<OpusDecoder>),
}

/// Consecutive container errors tolerated; bounded so a reader stuck on one spot cannot loop
/// forever.
const MAX_DEMUX_ERRORS: u32 = 64;

/// One packet's audio: interleaved samples at the file's rate and width.
pub(crate) struct Chunk<'a> {
    pub rate: u32,
    pub channels: usize,
    pub samples: &'a [f32],
}

/// An open sound file, read packet by packet.
pub(crate) struct PcmReader<'s> {
    file: String,
    format: Box<dyn FormatReader + 's>,
    codec: Codec,
    track_id: u32,
    opus_pre_skip: usize,
    /// Source frames the container declares, if it does.
    pub expected_frames: Option<u64>,
    /// Channels the container declares, if it does.
    pub declared_channels: Option<usize>,
    /// Sample rate the container declares, if it does.
    pub declared_rate: Option<u32>,
    /// Rate and width of the first decoded packet; later packets must match.
    spec: Option<(u32, usize)>,
    pub skipped: usize,
    last_problem: Option<String>,
    demux_errors: u32,
    produced: bool,
    scratch: Vec<f32>,
}

impl<'s> PcmReader<'s> {
    /// Probes the container and makes the decoder.
    pub fn open(
        file: &str,
        source: Box<dyn MediaSource + 's>,
        ext: Option<&str>,
    ) -> Result<Self, DecodeError> {
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(ext) = ext {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| probe_error(file, e))?;
        Self::with_format(file, format)
    }

    fn with_format(file: &str, format: Box<dyn FormatReader + 's>) -> Result<Self, DecodeError> {
        let no_track = || DecodeError::NoAudioTrack {
            file: file.to_owned(),
        };
        let corrupt = |detail: String| DecodeError::Corrupt {
            file: file.to_owned(),
            detail,
        };
        let unsupported = |detail: String| DecodeError::Unsupported {
            file: file.to_owned(),
            detail,
        };
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(no_track)?;
        let track_id = track.id;
        let opus_pre_skip = track.delay.unwrap_or(0) as usize;
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
        let declared_rate = params.sample_rate.filter(|&r| r > 0);
        let codec = if params.codec == CODEC_ID_OPUS {
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
        Ok(Self {
            file: file.to_owned(),
            format,
            codec,
            track_id,
            opus_pre_skip,
            expected_frames,
            declared_channels,
            declared_rate,
            spec: None,
            skipped: 0,
            last_problem: None,
            demux_errors: 0,
            produced: false,
            scratch: Vec::new(),
        })
    }

    /// Rate and width of the samples `next` returns (known after its first chunk).
    pub fn spec(&self) -> Option<(u32, usize)> {
        self.spec
    }

    /// Channels the file has (mono Opus decodes as stereo but is a mono file).
    pub fn file_channels(&self) -> Option<usize> {
        match self.codec {
            Codec::Opus(_) => self.declared_channels.or(self.spec.map(|s| s.1)),
            Codec::Symphonia(_) => self.spec.map(|s| s.1),
        }
    }

    /// The next packet's samples, interleaved at [`Self::spec`]; `None` at the end of the
    /// audio. Damaged packets are skipped (counted in `skipped`); a file that ends without
    /// any audio, or a format no one should decode, is an error.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk<'_>>, DecodeError> {
        let file = self.file.as_str();
        let corrupt = |detail: String| DecodeError::Corrupt {
            file: file.to_owned(),
            detail,
        };
        let unsupported = |detail: String| DecodeError::Unsupported {
            file: file.to_owned(),
            detail,
        };
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => return self.end(),
                // A truncated file ends early: keep what was decoded.
                Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return self.end();
                }
                // A new chained stream starts; a soundboard clip is the first one.
                Err(SymphoniaError::ResetRequired) => return self.end(),
                // A damaged page or frame (e.g. an Ogg CRC mismatch): readers move past it,
                // so try the next one, but give up if they keep failing without progress.
                Err(SymphoniaError::DecodeError(msg)) if self.demux_errors < MAX_DEMUX_ERRORS => {
                    self.demux_errors += 1;
                    self.skipped += 1;
                    self.last_problem = Some(msg.to_owned());
                    continue;
                }
                Err(e) if !self.produced => return Err(corrupt(e.to_string())),
                Err(e) => {
                    tracing::warn!(file, error = %e, "stopped reading at a damaged part; keeping the audio before it");
                    return self.end();
                }
            };
            self.demux_errors = 0;
            if packet.track_id != self.track_id {
                continue;
            }
            self.scratch.clear();
            let got = match &mut self.codec {
                Codec::Symphonia(dec) => match dec.decode(&packet) {
                    Ok(buf) => {
                        let got = (buf.spec().rate(), buf.spec().channels().count());
                        buf.copy_to_vec_interleaved::<f32>(&mut self.scratch);
                        Ok(got)
                    }
                    Err(e) => Err(e),
                },
                Codec::Opus(dec) => match dec.decode(&packet.data, &mut self.scratch) {
                    Ok(n) => {
                        // The demuxer trims the final padding but leaves the encoder's pre-skip
                        // (the track's delay) in the first packets: drop both so the clip has
                        // its true length.
                        let pre = self.opus_pre_skip.min(n);
                        self.opus_pre_skip -= pre;
                        let start = (packet.trim_start.get() as usize).max(pre).min(n);
                        let end = n.saturating_sub(packet.trim_end.get() as usize).max(start);
                        self.scratch.truncate(end * CHANNELS);
                        self.scratch.drain(..start * CHANNELS);
                        Ok((SAMPLE_RATE, CHANNELS))
                    }
                    Err(e) => Err(SymphoniaError::DecodeError(opus_error_text(&e))),
                },
            };
            match got {
                Ok((rate, channels)) if rate > 0 && channels > 0 => {
                    if self.spec.is_none() {
                        // Refuse absurd formats before buffering any of their audio.
                        if !(resample::MIN_RATE..=resample::MAX_RATE).contains(&rate) {
                            return Err(unsupported(ResampleError::Rate(rate).to_string()));
                        }
                        if channels > resample::MAX_CHANNELS {
                            return Err(unsupported(ResampleError::Channels(channels).to_string()));
                        }
                    }
                    if *self.spec.get_or_insert((rate, channels)) != (rate, channels) {
                        // Mid-stream format changes are rare and never what a soundboard wants.
                        self.skipped += 1;
                        self.last_problem = Some("the sample format changes mid-stream".to_owned());
                        continue;
                    }
                    if self.scratch.is_empty() {
                        continue;
                    }
                    self.produced = true;
                    return Ok(Some(Chunk {
                        rate,
                        channels,
                        samples: &self.scratch,
                    }));
                }
                Ok(_) => self.skipped += 1,
                // Damaged packets are skipped: a glitch is better than no sound.
                Err(SymphoniaError::DecodeError(msg)) => {
                    self.skipped += 1;
                    self.last_problem = Some(msg.to_owned());
                }
                Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return self.end();
                }
                Err(SymphoniaError::ResetRequired) => {
                    if let Codec::Symphonia(dec) = &mut self.codec {
                        dec.reset();
                    }
                }
                Err(e) => {
                    self.skipped += 1;
                    self.last_problem = Some(e.to_string());
                }
            }
        }
    }

    /// The end of the audio: fine if there was some, else the reason there was none.
    fn end(&mut self) -> Result<Option<Chunk<'_>>, DecodeError> {
        if self.produced {
            if self.skipped > 0 {
                tracing::warn!(
                    file = self.file,
                    skipped = self.skipped,
                    problem = self.last_problem.as_deref().unwrap_or(""),
                    "skipped damaged packets"
                );
            }
            return Ok(None);
        }
        Err(match &self.last_problem {
            Some(problem) => DecodeError::Corrupt {
                file: self.file.clone(),
                detail: format!(
                    "{} damaged packet(s) and no playable audio (decoder: {problem})",
                    self.skipped
                ),
            },
            None => DecodeError::NoSamples {
                file: self.file.clone(),
            },
        })
    }
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

/// symphonia's DecodeError carries a `&'static str`; map the few Opus failures to fixed text.
fn opus_error_text(e: &crate::opus::OpusError) -> &'static str {
    use audiopus::ErrorCode;
    match e {
        crate::opus::OpusError::Codec(audiopus::Error::Opus(ErrorCode::InvalidPacket)) => {
            "invalid Opus packet"
        }
        crate::opus::OpusError::Codec(audiopus::Error::Opus(ErrorCode::BufferTooSmall)) => {
            "Opus packet longer than 120 ms"
        }
        _ => "Opus decoding failed",
    }
}
