#![no_main]

// `decode_bytes` catches a panic inside symphonia and turns it into a clear "could not decode"
// (the product's behaviour, replayed by the stable corpus test). libfuzzer-sys's panic hook
// aborts on every panic, caught or not, so this target puts back a silent hook: a panic that
// escapes `decode_bytes` still aborts, through libfuzzer-sys's own catch around the target.
libfuzzer_sys::fuzz_target!(
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| voxboard_fuzz::audio_decode(data)
);
