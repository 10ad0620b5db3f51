//! Long clips play from disk: a decode-ahead thread per playing stream decodes and converts
//! the file into a bounded ring that the engine's tick reads without ever waiting.
//!
//! The thread honours the trim window itself (it discards audio before the start, stops at
//! the end, and for a looped sound goes round again), so the ring holds exactly the samples
//! the cursor plays, in order. If the ring runs dry the tick plays silence for that frame
//! and counts an underrun; the audio is late, never lost or reordered.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::convert::Converter;
use crate::decode::{Chunk, DecodeError, PcmReader};
use crate::shaping::Window;
use crate::{CHANNELS, SAMPLE_RATE};

/// Audio the ring holds ahead of the tick: 2 s (768 KB) rides out a slow disk or a busy
/// machine, and 8 playing streams cost 6 MB.
pub const RING_SECONDS: usize = 2;
const RING_LEN: usize = RING_SECONDS * SAMPLE_RATE as usize * CHANNELS;

/// A sound file made ready to play, for callers without a library (`voxboard play`).
pub enum Prepared {
    Memory(crate::decode::Clip),
    /// Too long to keep decoded: it streams from disk. Its loudness is the whole file's,
    /// measured in the same pass that counted its frames.
    Stream {
        clip: Arc<LongClip>,
        loudness: Option<crate::loudness::Measurement>,
    },
}

/// Decodes `path` into memory, or, when its decoded form would pass `stream_above_bytes`
/// (see `library::STREAM_ABOVE_BYTES`), only measures it in one pass so that it streams from
/// disk when played: an hour-long file then costs a 2 s ring, not 1.4 GB.
pub fn prepare_file(
    path: &std::path::Path,
    stream_above_bytes: u64,
    progress: &mut dyn FnMut(f32),
) -> Result<Prepared, DecodeError> {
    use crate::decode::{Decoded, Plan, load_file};
    let plan = Plan {
        stream_above_bytes: Some(stream_above_bytes),
        analyse: true,
    };
    let (decoded, analysis) = load_file(path, plan, progress)?;
    Ok(match decoded {
        Decoded::Memory(clip) => Prepared::Memory(clip),
        Decoded::Long { frames } => Prepared::Stream {
            clip: Arc::new(LongClip {
                path: path.to_path_buf(),
                frames: frames as usize,
            }),
            loudness: analysis.map(|a| a.loudness),
        },
    })
}

/// A clip too long to keep decoded: where it is and how long it plays, measured once at load.
#[derive(Debug, Clone, PartialEq)]
pub struct LongClip {
    pub path: PathBuf,
    /// Exact 48 kHz frames the file converts to.
    pub frames: usize,
}

/// A sound as the mixer receives it.
#[derive(Clone, PartialEq)]
pub enum Source {
    /// Decoded, 48 kHz stereo interleaved, shared with the library.
    Memory(Arc<[f32]>),
    /// Played from disk through a ring (see the module docs).
    Stream(Arc<LongClip>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(s) => write!(f, "Memory({} samples)", s.len()),
            Self::Stream(c) => write!(f, "Stream({:?})", c),
        }
    }
}

impl From<Arc<[f32]>> for Source {
    fn from(samples: Arc<[f32]>) -> Self {
        Self::Memory(samples)
    }
}

impl Source {
    /// Interleaved samples (48 kHz stereo) the whole sound plays.
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(s) => s.len(),
            Self::Stream(c) => c.frames * CHANNELS,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decoded samples, for an in-memory sound.
    pub fn samples(&self) -> Option<&Arc<[f32]>> {
        match self {
            Self::Memory(s) => Some(s),
            Self::Stream(_) => None,
        }
    }
}

/// What the decode-ahead thread tells the reader.
#[derive(Default)]
struct Shared {
    /// Nothing more will be written (the end, an error, or the reader left).
    done: AtomicBool,
    error: OnceLock<String>,
}

/// The tick's end of a stream. Dropping it stops the decode-ahead thread.
pub struct StreamReader {
    /// Only ever reached through `&mut self` (`get_mut`), so never locked: the Mutex only
    /// makes the ring's end `Sync`, as engine components must be.
    ring: Mutex<HeapCons<f32>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("done", &self.shared.done.load(Ordering::Relaxed))
            .finish()
    }
}

impl StreamReader {
    /// Starts the decode-ahead thread for `window` of `clip` (bounds in interleaved samples of
    /// the 48 kHz clip) and returns at once: the file is opened on that thread.
    pub fn open(clip: &LongClip, window: Window, looped: bool) -> Self {
        let (prod, cons) = HeapRb::<f32>::new(RING_LEN).split();
        let shared = Arc::new(Shared::default());
        let job = Job {
            path: clip.path.clone(),
            window,
            looped,
            ring: prod,
            shared: Arc::clone(&shared),
        };
        let spawned = std::thread::Builder::new()
            .name("voxboard-stream".to_owned())
            .spawn(move || job.run());
        if let Err(e) = spawned {
            let _ = shared.error.set(format!(
                "cannot start a stream thread for {}: {e}",
                clip.path.display()
            ));
            shared.done.store(true, Ordering::Release);
        }
        Self {
            ring: Mutex::new(cons),
            shared,
        }
    }

    /// Takes up to `out.len()` samples that are ready; never waits.
    pub fn pop(&mut self, out: &mut [f32]) -> usize {
        self.ring().pop_slice(out)
    }

    fn ring(&mut self) -> &mut HeapCons<f32> {
        self.ring.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything was read: the thread finished and the ring is empty.
    pub fn is_finished(&mut self) -> bool {
        // `done` first: a sample written before `done` is then seen in the ring.
        self.shared.done.load(Ordering::Acquire) && self.ring().is_empty()
    }

    /// Why the stream ended before its end (unreadable, damaged or shortened file).
    pub fn error(&self) -> Option<&str> {
        self.shared.error.get().map(String::as_str)
    }
}

/// The decode-ahead thread's work.
struct Job {
    path: PathBuf,
    window: Window,
    looped: bool,
    ring: HeapProd<f32>,
    shared: Arc<Shared>,
}

/// How long the thread sleeps when the ring is full: a tick, a hundredth of the ring.
const FULL_NAP: Duration = Duration::from_millis(20);

/// Why a pass over the file stopped.
enum Stop {
    /// The reader was dropped (the sound stopped).
    Left,
    Failed(String),
}

impl Job {
    fn run(mut self) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.play()));
        let error = match outcome {
            Ok(Ok(())) | Ok(Err(Stop::Left)) => None,
            Ok(Err(Stop::Failed(e))) => Some(e),
            Err(_) => Some(format!(
                "{}: streaming crashed on this file",
                self.path.display()
            )),
        };
        if let Some(e) = error {
            tracing::warn!(error = %e, "a streamed sound stopped early");
            let _ = self.shared.error.set(e);
        }
        self.shared.done.store(true, Ordering::Release);
    }

    fn play(&mut self) -> Result<(), Stop> {
        loop {
            self.pass()?;
            if !self.looped || self.window.is_empty() {
                return Ok(());
            }
        }
    }

    /// Writes the window once, from the file's start (audio before the trim start is decoded
    /// and dropped).
    fn pass(&mut self) -> Result<(), Stop> {
        let file = self.path.display().to_string();
        let fail = |e: DecodeError| Stop::Failed(e.to_string());
        let handle = std::fs::File::open(&self.path).map_err(|source| {
            fail(DecodeError::Io {
                file: file.clone(),
                source,
            })
        })?;
        let ext = self.path.extension().and_then(|e| e.to_str());
        let mut reader = PcmReader::open(&file, Box::new(handle), ext).map_err(fail)?;
        let mut converter: Option<Converter> = None;
        // Interleaved output samples seen so far in this pass.
        let mut at = 0usize;
        let end = self.window.end;
        let mut pending: Vec<f32> = Vec::new();
        while at < end {
            let Some(Chunk {
                rate,
                channels,
                samples,
            }) = reader.next_chunk().map_err(fail)?
            else {
                break;
            };
            let conv = match converter.as_mut() {
                Some(c) => c,
                None => converter.insert(
                    Converter::new(rate, channels)
                        .map_err(|e| Stop::Failed(format!("{file}: {e}")))?,
                ),
            };
            pending.clear();
            conv.push(samples, &mut |c| pending.extend_from_slice(c))
                .map_err(|e| Stop::Failed(format!("{file}: {e}")))?;
            at = self.write_window(&pending, at)?;
        }
        if at < end
            && let Some(conv) = converter
        {
            pending.clear();
            conv.finish(&mut |c| pending.extend_from_slice(c))
                .map_err(|e| Stop::Failed(format!("{file}: {e}")))?;
            at = self.write_window(&pending, at)?;
        }
        if at < end {
            let short = (end - at) / CHANNELS;
            return Err(Stop::Failed(format!(
                "{file} ended {:.1} s early while streaming (damaged, or changed since it was loaded)",
                short as f64 / f64::from(SAMPLE_RATE)
            )));
        }
        Ok(())
    }

    /// Writes the part of `chunk` (output samples `at..`) inside the window, waiting for room
    /// in the ring; returns the new `at`.
    fn write_window(&mut self, chunk: &[f32], at: usize) -> Result<usize, Stop> {
        let (start, end) = (self.window.start, self.window.end);
        let from = start.saturating_sub(at).min(chunk.len());
        let to = end.saturating_sub(at).min(chunk.len());
        let mut rest = &chunk[from..to.max(from)];
        while !rest.is_empty() {
            if !self.ring.read_is_held() {
                return Err(Stop::Left);
            }
            let n = self.ring.push_slice(rest);
            rest = &rest[n..];
            if n == 0 {
                std::thread::sleep(FULL_NAP);
            }
        }
        if !self.ring.read_is_held() {
            return Err(Stop::Left);
        }
        Ok(at + chunk.len())
    }
}
