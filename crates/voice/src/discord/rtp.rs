//! The outgoing RTP header (docs/protocol.md §4.2) and the per-stream counters behind it.

/// Fixed header length for what a bot sends: V=2, no padding, no extension, no CSRCs.
pub const HEADER_LEN: usize = 12;
/// Byte 0: version 2, P=0, X=0, CC=0.
const VERSION_BYTE: u8 = 0x80;
/// Byte 1: marker 0, payload type 120 (Opus).
const PAYLOAD_TYPE: u8 = 0x78;
/// 20 ms of a 48 kHz clock, whatever the channel count.
pub const TIMESTAMP_STEP: u32 = 960;

/// Sequence number and timestamp of one outgoing RTP stream (one SSRC).
///
/// Both start at random values (as discord.js does) and wrap; a resume keeps them, a new
/// session (new SSRC) starts a new stream.
#[derive(Debug, Clone)]
pub struct RtpStream {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
}

impl RtpStream {
    pub fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            sequence: rand::random(),
            timestamp: rand::random(),
        }
    }

    /// The header for the next packet; advances the counters by one 20 ms frame.
    pub fn next_header(&mut self) -> [u8; HEADER_LEN] {
        let header = write_header(self.sequence, self.timestamp, self.ssrc);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(TIMESTAMP_STEP);
        header
    }
}

/// Lays out a 12-byte RTP header, every field big-endian.
pub fn write_header(sequence: u16, timestamp: u32, ssrc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = VERSION_BYTE;
    h[1] = PAYLOAD_TYPE;
    h[2..4].copy_from_slice(&sequence.to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_the_protocol() {
        let h = write_header(0x0102, 0x0304_0506, 0x0708_090a);
        assert_eq!(h, [0x80, 0x78, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn counters_advance_and_wrap() {
        let mut s = RtpStream {
            ssrc: 7,
            sequence: u16::MAX,
            timestamp: u32::MAX - 100,
        };
        let first = s.next_header();
        assert_eq!(&first[2..4], &u16::MAX.to_be_bytes());
        let second = s.next_header();
        assert_eq!(&second[2..4], &0u16.to_be_bytes());
        assert_eq!(
            u32::from_be_bytes(second[4..8].try_into().unwrap()),
            (u32::MAX - 100).wrapping_add(960)
        );
    }
}
