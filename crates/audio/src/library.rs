//! The sound library: every sound on the board, decoded lazily and kept in a memory-capped
//! cache.
//!
//! A board may hold hundreds of sounds, so [`SoundLibrary::add`] only records a path; decoding
//! happens on a small pool of decode threads when a sound is requested (a click) or preloaded
//! (hotkeyed or visible sounds). Decoded clips live in an LRU cache whose size is bounded in
//! bytes; evicting a clip only drops the library's reference, so a playback holding the
//! `Arc` keeps playing. A clip whose decoded form would pass
//! [`LibraryConfig::stream_above_bytes`] is never held: the decode thread measures it in one
//! pass (length, loudness, waveform) and [`SoundLibrary::get`] hands out a
//! [`Source::Stream`] that plays from disk (`crate::stream`). A file that cannot be decoded marks that one sound
//! [`SoundState::Failed`] with the decoder's message; nothing else is affected.
//!
//! Every method takes one mutex for a short, allocation-light critical section; decoding,
//! loudness measurement and the change hook all run with no lock held, so [`SoundLibrary::get`]
//! and [`SoundLibrary::state`] never wait on a decode.

mod worker;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::CHANNELS;
use super::loudness;
use super::shaping::Shape;
use super::stream::Source;
use super::waveform::Waveform;

/// Identifies one sound in a [`SoundLibrary`]. Ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SoundId(u64);

impl SoundId {
    /// The number behind the id (for logs and persistence keys).
    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sound #{}", self.0)
    }
}

/// What a button shows for its sound.
#[derive(Clone, Debug, PartialEq)]
pub enum SoundState {
    /// Not in memory: never requested, evicted from the cache, or handed off (see
    /// [`SoundLibrary::get`]). [`SoundLibrary::request`] decodes it.
    Unloaded,
    /// Queued (progress 0) or being decoded.
    Decoding { progress: f32 },
    /// Decoded and in memory: [`SoundLibrary::get`] returns the samples.
    Ready {
        duration: Duration,
        /// EBU R128 integrated loudness; `None` for silence or clips under 400 ms.
        loudness_lufs: Option<f64>,
    },
    /// The file could not be decoded; the reason names the file.
    Failed { reason: String },
}

/// Sizing of a [`SoundLibrary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryConfig {
    /// Bytes of decoded audio the cache may hold (4 bytes per sample). A clip larger than
    /// this is still decoded and handed to its first taker, but never cached.
    pub memory_cap_bytes: usize,
    /// Decode threads (at least 1).
    pub decode_threads: usize,
    /// A clip whose decoded form (48 kHz stereo f32) would pass this many bytes is not kept
    /// in memory: it is measured in one pass at load and streams from disk when played.
    pub stream_above_bytes: usize,
}

/// Default [`LibraryConfig::stream_above_bytes`]: 32 MiB, about 87 s decoded. Effects,
/// jingles and most songs stay in memory (instant, any number of overlaps); music beds and
/// long ambience stream. Eight clips at the limit fit the default 256 MB cache, so no one
/// long clip can push the rest of the board out of it.
pub const STREAM_ABOVE_BYTES: usize = 32 * 1024 * 1024;

impl Default for LibraryConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            memory_cap_bytes: 256 * 1024 * 1024,
            decode_threads: cores.clamp(1, 2),
            stream_above_bytes: STREAM_ABOVE_BYTES,
        }
    }
}

/// Counters for a status line and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LibraryStats {
    /// Sounds registered.
    pub sounds: usize,
    /// Clips held by the cache.
    pub cached_clips: usize,
    /// Bytes held by the cache (never above the cap).
    pub cached_bytes: usize,
    /// Decodes started since the library was made (each one opened a file).
    pub decodes_started: u64,
    /// Clips dropped from the cache to make room.
    pub evictions: u64,
}

/// Called with a sound's id whenever its [`SoundState`] changes, from whichever thread changed
/// it (a decode thread, or the caller of `request`/`remove`/...). Keep it quick: it should
/// only ask the UI to repaint. It must not own a [`SoundLibrary`] handle: the library owns
/// the hook, and the cycle would keep the decode threads alive after the app drops its own.
pub type ChangeHook = Arc<dyn Fn(SoundId) + Send + Sync>;

/// Shared handle to the sound library: cheap to clone, `Send + Sync`. The decode threads stop
/// once the last handle is dropped.
#[derive(Clone)]
pub struct SoundLibrary {
    shared: Arc<Shared>,
    /// Dropped with the last handle; closes the queue so the decode threads exit.
    _owner: Arc<Owner>,
}

impl fmt::Debug for SoundLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoundLibrary")
            .field("stats", &self.stats())
            .finish()
    }
}

/// What the library knows about a decoded clip; survives eviction (for normalisation and the
/// edit dialog's waveform, which then needs no new decode).
#[derive(Clone, Debug)]
struct ClipInfo {
    duration: Duration,
    loudness: Arc<loudness::Profile>,
    waveform: Arc<Waveform>,
}

enum Slot {
    Idle,
    Queued,
    Decoding(f32),
    /// `transient`: larger than the cap, held only until the first `get`/`wait_ready`.
    /// A streamed clip holds only its path and length: never cached, never transient.
    Ready {
        source: Source,
        transient: bool,
    },
    Failed(String),
}

struct Entry {
    path: PathBuf,
    slot: Slot,
    info: Option<ClipInfo>,
    /// Bumped on every new decode job and on reload: results of older jobs are dropped.
    generation: u64,
    /// Key in `State::lru` while cached.
    stamp: u64,
}

struct State {
    sounds: HashMap<SoundId, Entry>,
    next_id: u64,
    /// Cached clips, least recently used first.
    lru: BTreeMap<u64, SoundId>,
    clock: u64,
    cached_bytes: usize,
    queue: VecDeque<(SoundId, u64)>,
    closed: bool,
    hook: Option<ChangeHook>,
    stats: LibraryStats,
}

struct Shared {
    state: Mutex<State>,
    /// Decode threads wait here for jobs.
    work: Condvar,
    /// `wait_ready` callers wait here for decodes to finish.
    done: Condvar,
    cap: usize,
    stream_above: usize,
}

struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.work.notify_all();
    }
}

impl Shared {
    /// Takes the lock even if a panic elsewhere poisoned it: every critical section leaves
    /// the state consistent before anything that could panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls the change hook for `ids`, with no lock held.
    fn notify(&self, hook: Option<ChangeHook>, ids: &[SoundId]) {
        if let Some(hook) = hook {
            for &id in ids {
                hook(id);
            }
        }
    }
}

impl State {
    fn touch(&mut self, id: SoundId) {
        if let Some(entry) = self.sounds.get_mut(&id) {
            self.lru.remove(&entry.stamp);
            self.clock += 1;
            entry.stamp = self.clock;
            self.lru.insert(self.clock, id);
        }
    }

    /// Forgets the cached samples of `id` (if any), keeping its info.
    fn uncache(&mut self, id: SoundId) {
        let Some(entry) = self.sounds.get_mut(&id) else {
            return;
        };
        if let Slot::Ready { source, transient } = &entry.slot {
            if !transient {
                self.cached_bytes -= bytes_of(source);
                self.lru.remove(&entry.stamp);
            }
            entry.slot = Slot::Idle;
        }
    }

    /// Queues a decode of `id` unless it is in memory or already on its way; `urgent` jobs go
    /// first. Returns whether the state changed.
    fn enqueue(&mut self, id: SoundId, urgent: bool) -> bool {
        let Some(entry) = self.sounds.get_mut(&id) else {
            return false;
        };
        match entry.slot {
            Slot::Idle => {
                entry.generation += 1;
                entry.slot = Slot::Queued;
                let job = (id, entry.generation);
                if urgent {
                    self.queue.push_front(job);
                } else {
                    self.queue.push_back(job);
                }
                true
            }
            Slot::Queued if urgent => {
                // A click overtakes the preloads queued before it.
                if let Some(at) = self.queue.iter().position(|&(j, _)| j == id)
                    && let Some(job) = self.queue.remove(at)
                {
                    self.queue.push_front(job);
                }
                false
            }
            _ => false,
        }
    }

    /// Samples of `id` if in memory; touches the LRU, or hands off a transient clip.
    fn take_ready(&mut self, id: SoundId) -> Option<(Source, bool)> {
        let entry = self.sounds.get_mut(&id)?;
        let Slot::Ready { source, transient } = &entry.slot else {
            return None;
        };
        let samples = source.clone();
        if *transient {
            entry.slot = Slot::Idle;
            Some((samples, true))
        } else {
            // A streamed clip is not in the cache: nothing to evict, so nothing to touch.
            if matches!(samples, Source::Memory(_)) {
                self.touch(id);
            }
            Some((samples, false))
        }
    }
}

/// Bytes a ready sound holds in memory (a streamed one: none worth counting).
fn bytes_of(source: &Source) -> usize {
    match source {
        Source::Memory(samples) => std::mem::size_of_val(&samples[..]),
        Source::Stream(_) => 0,
    }
}

impl SoundLibrary {
    /// Makes an empty library and starts its decode threads (they sleep until there is work).
    pub fn new(config: LibraryConfig) -> Self {
        // Evicted clips must leave the process, or the cache's cap bounds nothing.
        super::memory::return_freed_clips_to_the_system();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                sounds: HashMap::new(),
                next_id: 1,
                lru: BTreeMap::new(),
                clock: 0,
                cached_bytes: 0,
                queue: VecDeque::new(),
                closed: false,
                hook: None,
                stats: LibraryStats::default(),
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            cap: config.memory_cap_bytes,
            stream_above: config.stream_above_bytes,
        });
        for n in 0..config.decode_threads.max(1) {
            worker::spawn(Arc::clone(&shared), n);
        }
        let owner = Arc::new(Owner(Arc::clone(&shared)));
        Self {
            shared,
            _owner: owner,
        }
    }

    /// Registers a sound file. Nothing is read until the sound is requested or preloaded.
    pub fn add(&self, path: PathBuf) -> SoundId {
        let mut st = self.shared.lock();
        let id = SoundId(st.next_id);
        st.next_id += 1;
        st.sounds.insert(
            id,
            Entry {
                path,
                slot: Slot::Idle,
                info: None,
                generation: 0,
                stamp: 0,
            },
        );
        st.stats.sounds = st.sounds.len();
        id
    }

    /// Forgets a sound: its cached clip is dropped (playbacks keep their `Arc`), a decode in
    /// progress is discarded, and `wait_ready` callers get an error.
    pub fn remove(&self, id: SoundId) {
        let hook = {
            let mut st = self.shared.lock();
            st.uncache(id);
            if st.sounds.remove(&id).is_none() {
                return;
            }
            st.queue.retain(|&(j, _)| j != id);
            st.stats.sounds = st.sounds.len();
            st.hook.clone()
        };
        self.shared.done.notify_all();
        self.shared.notify(hook, &[id]);
    }

    /// The file behind a sound.
    pub fn path(&self, id: SoundId) -> Option<PathBuf> {
        self.shared.lock().sounds.get(&id).map(|e| e.path.clone())
    }

    /// Every registered sound, oldest first.
    pub fn ids(&self) -> Vec<SoundId> {
        let mut ids: Vec<SoundId> = self.shared.lock().sounds.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The sound's state; `None` for an unknown id. Never waits on a decode.
    pub fn state(&self, id: SoundId) -> Option<SoundState> {
        let st = self.shared.lock();
        let entry = st.sounds.get(&id)?;
        Some(match &entry.slot {
            Slot::Idle => SoundState::Unloaded,
            Slot::Queued => SoundState::Decoding { progress: 0.0 },
            Slot::Decoding(p) => SoundState::Decoding { progress: *p },
            Slot::Ready { .. } => match &entry.info {
                Some(info) => SoundState::Ready {
                    duration: info.duration,
                    loudness_lufs: info.loudness.whole().lufs,
                },
                None => SoundState::Unloaded,
            },
            Slot::Failed(reason) => SoundState::Failed {
                reason: reason.clone(),
            },
        })
    }

    /// Starts decoding the sound in the background unless it is in memory, already queued or
    /// decoding (a queued one moves to the front), or failed (use [`Self::reload`] to retry).
    /// Returns at once.
    pub fn request(&self, id: SoundId) {
        self.queue_jobs(&[id], true);
    }

    /// Queues decodes for sounds likely to be played soon (hotkeyed or visible), behind any
    /// requested ones.
    pub fn preload(&self, ids: &[SoundId]) {
        self.queue_jobs(ids, false);
    }

    fn queue_jobs(&self, ids: &[SoundId], urgent: bool) {
        let (changed, hook) = {
            let mut st = self.shared.lock();
            let changed: Vec<SoundId> = ids
                .iter()
                .copied()
                .filter(|&id| st.enqueue(id, urgent))
                .collect();
            (changed, st.hook.clone())
        };
        if !changed.is_empty() {
            self.shared.work.notify_all();
            self.shared.notify(hook, &changed);
        }
    }

    /// The sound ready to play: its decoded samples (48 kHz stereo interleaved) if in memory,
    /// marking it as recently used, or for a long clip what the mixer needs to stream it;
    /// `None` if not loaded. Never decodes and never waits on a decode. A clip larger than
    /// the cache is handed to the first caller and then forgotten.
    pub fn get(&self, id: SoundId) -> Option<Source> {
        let (samples, handed_off, hook) = {
            let mut st = self.shared.lock();
            let (samples, handed_off) = st.take_ready(id)?;
            (samples, handed_off, st.hook.clone())
        };
        if handed_off {
            self.shared.notify(hook, &[id]);
        }
        Some(samples)
    }

    /// Blocks until the sound is decoded (requesting it if needed) or `timeout` passes. For
    /// the CLI and tests; the UI and engine use `request` + `get`. The error is the decode
    /// failure (naming the file), or says the sound is unknown, removed or timed out.
    pub fn wait_ready(&self, id: SoundId, timeout: Duration) -> Result<Source, String> {
        let deadline = Instant::now() + timeout;
        self.request(id);
        let mut st = self.shared.lock();
        loop {
            let Some(entry) = st.sounds.get(&id) else {
                return Err(format!("{id} is not in the library (removed?)"));
            };
            let path = entry.path.display().to_string();
            match &entry.slot {
                Slot::Failed(reason) => return Err(reason.clone()),
                Slot::Ready { .. } => {
                    let taken = st.take_ready(id);
                    let hook = st.hook.clone();
                    drop(st);
                    return match taken {
                        Some((samples, handed_off)) => {
                            if handed_off {
                                self.shared.notify(hook, &[id]);
                            }
                            Ok(samples)
                        }
                        None => Err(format!("{path}: not in memory")),
                    };
                }
                Slot::Idle => {
                    // Evicted or handed off to someone else between wakeups: decode again.
                    if st.enqueue(id, true) {
                        self.shared.work.notify_all();
                    }
                }
                Slot::Queued | Slot::Decoding(_) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{path}: still decoding after {:.1} s",
                    timeout.as_secs_f64()
                ));
            }
            st = self
                .shared
                .done
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Re-reads the file after it changed or vanished: the cached clip and measurements are
    /// dropped (playbacks keep their `Arc`) and, if the sound was in use (in memory, decoding
    /// or failed), it is decoded again; a vanished file then becomes `Failed`. A sound that
    /// was not loaded just stays `Unloaded` and reads the new file when requested.
    pub fn reload(&self, id: SoundId) {
        let (changed, hook) = {
            let mut st = self.shared.lock();
            st.uncache(id);
            let Some(entry) = st.sounds.get_mut(&id) else {
                return;
            };
            // In use: anything but a plain idle sound. `uncache` turned Ready into Idle, so
            // `info` tells a just-dropped clip from one never decoded.
            let in_use = !matches!(entry.slot, Slot::Idle) || entry.info.is_some();
            entry.info = None;
            entry.generation += 1; // discard a decode of the old file in progress
            entry.slot = Slot::Idle;
            st.queue.retain(|&(j, _)| j != id);
            if in_use {
                st.enqueue(id, true);
            }
            (in_use, st.hook.clone())
        };
        self.shared.work.notify_all();
        self.shared.done.notify_all();
        if changed {
            self.shared.notify(hook, &[id]);
        }
    }

    /// Linear gain that brings the window `shape` trims to `target_lufs` (boost capped at
    /// +12 dB and at −1 dBTP true peak); `None` until it has been decoded once, or if it is
    /// silent.
    pub fn normalisation_gain(&self, id: SoundId, target_lufs: f64, shape: &Shape) -> Option<f32> {
        let m = self.loudness(id, shape)?;
        loudness::gain_to_target(m.lufs?, m.true_peak, target_lufs)
    }

    /// Loudness and true peak of the window `shape` trims from the clip (the whole clip for
    /// `Shape::default()`), once it has been decoded; kept after eviction, and computed from
    /// the per-100 ms profile, so a trim being dragged costs no decode and no meter pass.
    pub fn loudness(&self, id: SoundId, shape: &Shape) -> Option<loudness::Measurement> {
        let profile = Arc::clone(&self.shared.lock().sounds.get(&id)?.info.as_ref()?.loudness);
        Some(profile.window(shape))
    }

    /// The clip's waveform, once it has been decoded (kept after the samples are evicted).
    pub fn waveform(&self, id: SoundId) -> Option<Arc<Waveform>> {
        let st = self.shared.lock();
        Some(Arc::clone(&st.sounds.get(&id)?.info.as_ref()?.waveform))
    }

    /// Sets the function called when a sound's state changes (replacing any previous one).
    pub fn set_on_change(&self, hook: ChangeHook) {
        self.shared.lock().hook = Some(hook);
    }

    /// Counters: sounds, cache use, decodes started, evictions.
    pub fn stats(&self) -> LibraryStats {
        let st = self.shared.lock();
        LibraryStats {
            cached_clips: st.lru.len(),
            cached_bytes: st.cached_bytes,
            ..st.stats
        }
    }

    /// The cache's size limit in bytes.
    pub fn memory_cap_bytes(&self) -> usize {
        self.shared.cap
    }
}

/// Duration of a sound of `len` 48 kHz stereo interleaved samples.
fn duration_of(len: usize) -> Duration {
    Duration::from_secs_f64((len / CHANNELS) as f64 / f64::from(super::SAMPLE_RATE))
}

#[cfg(test)]
mod tests;
