//! Decoding real files, the sound library, Opus.

mod decode;
mod library;
mod opus;
mod stream;
