//! Opus as the engine uses it: decoded clips cut into 20 ms frames, encoded, and decoded again
//! the way a Discord listener would. Also proves `encode` does not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::f32::consts::PI;
use std::path::Path;

use voxboard_audio::analysis::{channel, dominant_frequency, rms, tone_segments};
use voxboard_audio::decode::decode_file;
use voxboard_audio::opus::{DEFAULT_BITRATE, MAX_PACKET, OpusDecoder, OpusEncoder};
use voxboard_audio::{FRAME_LEN, SAMPLE_RATE};

/// Counts heap allocations made by the current thread, so parallel tests do not interfere.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Encodes interleaved stereo 48 kHz audio frame by frame (the last frame zero-padded) and
/// decodes every packet. Returns the decoded audio and the total packet bytes.
fn through_opus(samples: &[f32], bitrate: u32) -> (Vec<f32>, usize) {
    let mut enc = OpusEncoder::new(bitrate).expect("encoder");
    let mut dec = OpusDecoder::new().expect("decoder");
    let mut packet = [0u8; MAX_PACKET];
    let mut frame = [0.0f32; FRAME_LEN];
    let mut out = Vec::with_capacity(samples.len() + FRAME_LEN);
    let mut bytes = 0;
    for chunk in samples.chunks(FRAME_LEN) {
        frame[..chunk.len()].copy_from_slice(chunk);
        frame[chunk.len()..].fill(0.0);
        let n = enc.encode(&frame, &mut packet).expect("encode");
        bytes += n;
        dec.decode(&packet[..n], &mut out).expect("decode");
    }
    (out, bytes)
}

#[test]
fn decoded_clip_survives_opus_with_frequency_and_level() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sine1k_44k1_mono.flac");
    let clip = decode_file(&path, &mut |_| {}).expect("decode fixture");
    let (out, bytes) = through_opus(&clip.samples, DEFAULT_BITRATE);
    assert_eq!(
        out.len(),
        clip.samples.len().div_ceil(FRAME_LEN) * FRAME_LEN
    );
    // Compare the steady middle: Opus delays by a few ms and needs a frame to settle.
    let (lo, hi) = (4_800 * 2, clip.samples.len() - 4_800 * 2);
    let left = channel(&out[lo..hi], 2, 0);
    let f = dominant_frequency(&left, SAMPLE_RATE, 20.0, 20_000.0);
    assert!((f - 1000.0).abs() <= 1.0, "frequency after Opus: {f}");
    let (a, b) = (rms(&clip.samples[lo..hi]), rms(&out[lo..hi]));
    assert!((b / a - 1.0).abs() < 0.10, "rms before {a}, after {b}");
    eprintln!(
        "opus 128k: {} frames -> {bytes} bytes, {f:.2} Hz, rms {a:.4} -> {b:.4}",
        clip.frames().div_ceil(960)
    );
}

#[test]
fn tone_sequence_is_heard_in_order_after_opus() {
    // 440 Hz for 0.4 s, 660 Hz for 0.2 s, 880 Hz for 0.6 s: what a soundboard test clip plays.
    let plan = [(440.0f32, 0.4f32), (660.0, 0.2), (880.0, 0.6)];
    let mut samples = Vec::new();
    for (freq, secs) in plan {
        let n = (secs * SAMPLE_RATE as f32) as usize;
        samples.extend((0..n).flat_map(|i| {
            let s = 0.4 * (2.0 * PI * freq * i as f32 / SAMPLE_RATE as f32).sin();
            [s, s]
        }));
    }
    let (out, _) = through_opus(&samples, 64_000);
    let mono = channel(&out, 2, 0);
    let segments = tone_segments(&mono, SAMPLE_RATE, &[440.0, 660.0, 880.0], 0.02);
    let heard: Vec<f32> = segments.iter().map(|s| s.0).collect();
    assert_eq!(heard, vec![440.0, 660.0, 880.0], "{segments:?}");
    for ((_, start, end), (freq, secs)) in segments.iter().zip(plan) {
        assert!(
            ((end - start) - secs).abs() <= 0.041,
            "{freq} Hz lasted {} s, wanted {secs}",
            end - start
        );
    }
    eprintln!("segments after Opus: {segments:?}");
}

#[test]
fn encode_does_not_allocate() {
    let mut enc = OpusEncoder::new(DEFAULT_BITRATE).expect("encoder");
    let mut packet = [0u8; MAX_PACKET];
    let frame: Vec<f32> = (0..FRAME_LEN)
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect();
    // Warm up once: libopus sets itself up lazily on the first frame.
    enc.encode(&frame, &mut packet).expect("encode");
    let before = allocations();
    for _ in 0..50 {
        enc.encode(&frame, &mut packet).expect("encode");
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "encode allocated {during} times in 50 frames");
    // The counter itself works: a Vec allocation is seen.
    let v = std::hint::black_box(vec![1u8; 16]);
    assert!(allocations() > before, "{}", v.len());
}
