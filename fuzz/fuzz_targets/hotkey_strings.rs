#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxboard_fuzz::hotkey_strings(data));
