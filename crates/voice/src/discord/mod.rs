//! Every byte of Discord: main gateway, voice gateway v8, UDP/RTP and transport encryption.

pub mod close_codes;
pub mod crypto;
pub mod gateway;
pub mod rtp;
pub mod udp;
pub mod voice_gateway;
pub mod ws;
