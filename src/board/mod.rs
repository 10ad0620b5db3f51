//! The board: the model and its repair live in `voxboard-board` (no GUI stack, so the fuzzer
//! builds it); here are its storage, the trust in its URLs and the hotkeys it binds.

pub mod hotkeys;
pub mod store;
pub mod trust;

pub use voxboard_board::*;
