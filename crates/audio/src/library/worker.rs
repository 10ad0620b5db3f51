//! The decode threads: take a job, decode with no lock held, store the result.

use std::path::Path;
use std::sync::Arc;
use std::thread;

use super::{ClipInfo, Shared, Slot, SoundId, State, bytes_of, duration_of};
use crate::analysis;
use crate::decode::{Decoded, Plan, load_file};
use crate::loudness;
use crate::stream::{LongClip, Source};
use crate::waveform::Waveform;

/// Starts decode thread number `n`. It exits when the library's last handle is dropped.
pub(super) fn spawn(shared: Arc<Shared>, n: usize) {
    thread::Builder::new()
        .name(format!("voxboard-decode-{n}"))
        .spawn(move || run(&shared))
        // Like `thread::spawn`: an OS that cannot start a thread leaves no way to work.
        .expect("cannot start a sound decode thread");
}

fn run(shared: &Shared) {
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if st.closed {
                    return;
                }
                if let Some(job) = st.queue.pop_front() {
                    break job;
                }
                st = shared
                    .work
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        run_job(shared, job.0, job.1);
    }
}

/// The result of decoding one file, ready to be stored.
enum Outcome {
    Clip { source: Source, info: ClipInfo },
    Failed(String),
}

fn run_job(shared: &Shared, id: SoundId, generation: u64) {
    let (path, hook) = {
        let mut st = shared.lock();
        let Some(entry) = st.sounds.get_mut(&id) else {
            return; // removed while queued
        };
        if entry.generation != generation || !matches!(entry.slot, Slot::Queued) {
            return; // superseded by a reload
        }
        entry.slot = Slot::Decoding(0.0);
        let path = entry.path.clone();
        st.stats.decodes_started += 1;
        (path, st.hook.clone())
    };
    shared.notify(hook, &[id]);

    let outcome = decode(shared, id, generation, &path);

    let (changed, hook) = {
        let mut st = shared.lock();
        let changed = store(&mut st, shared.cap, id, generation, outcome);
        (changed, st.hook.clone())
    };
    shared.done.notify_all();
    shared.notify(hook, &changed);
}

/// Decodes and measures the file; publishes progress as it goes.
fn decode(shared: &Shared, id: SoundId, generation: u64, path: &Path) -> Outcome {
    let mut last = 0.0f32;
    let mut progress = |p: f32| {
        // The decoder reports 1 % steps and a final 1.0; Ready says "done", not 100 %.
        if p >= 1.0 || p - last < 0.01 {
            return;
        }
        last = p;
        let hook = {
            let mut st = shared.lock();
            match st.sounds.get_mut(&id) {
                Some(e) if e.generation == generation => e.slot = Slot::Decoding(p),
                _ => return,
            }
            st.hook.clone()
        };
        shared.notify(hook, &[id]);
    };
    // The decoder already contains decoder panics; this also covers the meters, so that a
    // bad file costs one sound and never a decode thread.
    let plan = Plan {
        stream_above_bytes: Some(shared.stream_above as u64),
        analyse: true,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        load_file(path, plan, &mut progress).map(|(decoded, analysis)| {
            let measured = analysis.map(|a| (a.loudness, a.waveform));
            match decoded {
                Decoded::Memory(clip) => {
                    // Per 100 ms, so that a trimmed window's loudness is known without the
                    // samples. The meter cannot fail for 48 kHz stereo; were it to, the clip
                    // plays un-normalised.
                    let loudness = loudness::Profile::measure(&clip.samples).unwrap_or_else(|| {
                        loudness::Profile::whole_only(loudness::Measurement {
                            lufs: None,
                            true_peak: analysis::peak(&clip.samples),
                        })
                    });
                    let waveform = Arc::new(Waveform::compute(&clip.samples));
                    (Source::Memory(clip.samples), Arc::new(loudness), waveform)
                }
                Decoded::Long { frames, .. } => {
                    let (loudness, waveform) = measured.unwrap_or((
                        loudness::Measurement {
                            lufs: None,
                            true_peak: 0.0,
                        },
                        None,
                    ));
                    tracing::info!(
                        file = %path.display(),
                        seconds = frames / u64::from(crate::SAMPLE_RATE),
                        "long clip: it will stream from disk"
                    );
                    let clip = LongClip {
                        path: path.to_path_buf(),
                        frames: frames as usize,
                    };
                    // Measured in the streaming pass as a whole: a trim window of a streamed
                    // clip is normalised by the whole clip's loudness.
                    (
                        Source::Stream(Arc::new(clip)),
                        Arc::new(loudness::Profile::whole_only(loudness)),
                        Arc::new(waveform.unwrap_or_default()),
                    )
                }
            }
        })
    }));
    match result {
        Ok(Ok((source, loudness, waveform))) => Outcome::Clip {
            info: ClipInfo {
                duration: duration_of(source.len()),
                loudness,
                waveform,
            },
            source,
        },
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(_) => Outcome::Failed(format!("{}: decoding crashed on this file", path.display())),
    }
}

/// Stores a finished decode unless the sound was removed or reloaded meanwhile; evicts least
/// recently used clips to stay under `cap`. Returns every sound whose state changed.
fn store(
    st: &mut State,
    cap: usize,
    id: SoundId,
    generation: u64,
    outcome: Outcome,
) -> Vec<SoundId> {
    let Some(entry) = st.sounds.get_mut(&id) else {
        return Vec::new();
    };
    if entry.generation != generation {
        return Vec::new();
    }
    let (samples, info) = match outcome {
        Outcome::Failed(reason) => {
            tracing::warn!(%id, %reason, "sound failed to load");
            entry.slot = Slot::Failed(reason);
            entry.info = None;
            return vec![id];
        }
        Outcome::Clip { source, info } => (source, info),
    };
    entry.info = Some(info);
    let bytes = bytes_of(&samples);
    if matches!(samples, Source::Stream(_)) {
        entry.slot = Slot::Ready {
            source: samples,
            transient: false,
        };
        return vec![id];
    }
    if bytes > cap {
        tracing::info!(%id, bytes, cap, "clip larger than the cache: playing it without keeping it");
        entry.slot = Slot::Ready {
            source: samples,
            transient: true,
        };
        return vec![id];
    }
    entry.slot = Slot::Ready {
        source: samples,
        transient: false,
    };
    st.cached_bytes += bytes;
    st.touch(id);
    let mut changed = vec![id];
    while st.cached_bytes > cap {
        // The new clip is the most recent and fits alone, so the loop stops before it.
        let Some((_, old)) = st.lru.pop_first() else {
            break;
        };
        if let Some(e) = st.sounds.get_mut(&old)
            && let Slot::Ready { source, .. } = &e.slot
        {
            st.cached_bytes -= bytes_of(source);
            e.slot = Slot::Idle;
            st.stats.evictions += 1;
            changed.push(old);
        }
    }
    changed
}
