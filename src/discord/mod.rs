//! Every byte of Discord: main gateway, voice gateway v8, UDP/RTP and transport encryption.

pub mod crypto;
pub mod rtp;
