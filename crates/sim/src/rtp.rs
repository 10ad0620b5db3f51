//! RTP header parsing and transport decryption (docs/protocol.md §4.2, §5), written from the spec.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use crypto_secretbox::XSalsa20Poly1305;

/// Discord's Opus payload type.
pub const PT_OPUS: u8 = 120;
/// The Opus silence frame the silence rule is about.
pub const SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];
/// Samples per channel in one 20 ms Opus frame at 48 kHz, the only frame size Discord sends.
pub const FRAME_SAMPLES: usize = 960;
/// Interleaved stereo samples in one frame: what a listener decodes per packet.
pub const FRAME_LEN: usize = FRAME_SAMPLES * 2;
const TAG: usize = 16;

/// The parts of an RTP header the simulator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub padding: bool,
    /// 12 + 4*CC: where the extension preamble (or the payload) starts.
    pub fixed_len: usize,
    /// Present when X=1: the extension body length in bytes (4 * the preamble's word count).
    pub ext_body_len: Option<usize>,
}

impl RtpHeader {
    /// The cleartext, authenticated part under the `_rtpsize` rule: fixed header, CSRCs, and the
    /// 4-byte extension preamble if X=1.
    pub fn rtpsize_aad_len(&self) -> usize {
        self.fixed_len + if self.ext_body_len.is_some() { 4 } else { 0 }
    }
}

/// Strictly parses an RTP header; `Err` says why the datagram is not RTP.
pub fn parse_header(pkt: &[u8]) -> Result<RtpHeader, String> {
    if pkt.len() < 12 {
        return Err(format!("{} bytes is shorter than an RTP header", pkt.len()));
    }
    let version = pkt[0] >> 6;
    if version != 2 {
        return Err(format!("RTP version {version}, expected 2"));
    }
    let cc = usize::from(pkt[0] & 0x0F);
    let fixed_len = 12 + 4 * cc;
    let ext = pkt[0] & 0x10 != 0;
    let ext_body_len = if ext {
        let pre = pkt
            .get(fixed_len..fixed_len + 4)
            .ok_or("X=1 but the extension preamble is missing")?;
        Some(4 * usize::from(u16::from_be_bytes([pre[2], pre[3]])))
    } else {
        None
    };
    if pkt.len() < fixed_len {
        return Err(format!("CC={cc} but only {} bytes", pkt.len()));
    }
    Ok(RtpHeader {
        payload_type: pkt[1] & 0x7F,
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        padding: pkt[0] & 0x20 != 0,
        fixed_len,
        ext_body_len,
    })
}

/// A decrypted packet: the media payload and the nonce it used (zero-padded to 24 bytes), so that
/// reuse under one key can be detected whatever the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub payload: Vec<u8>,
    pub nonce: [u8; 24],
}

enum Cipher {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
    SecretBox(Box<XSalsa20Poly1305>),
}

/// Where a mode puts its nonce and what it authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `_rtpsize`: AAD per docs/protocol.md §5.2, 4-byte BE counter appended.
    RtpSize,
    /// `aead_aes256_gcm`: AAD = 12-byte header, 4-byte counter appended.
    FixedHeaderCounter,
    /// `xsalsa20_poly1305`: nonce = the 12-byte header + zeros.
    HeaderNonce,
    /// `xsalsa20_poly1305_suffix`: 24 random nonce bytes appended.
    Suffix,
    /// `xsalsa20_poly1305_lite`: 4-byte counter appended, header = 12 bytes.
    Lite,
}

/// The transport cipher of one voice session (mode + Session Description key).
pub struct TransportCipher {
    cipher: Cipher,
    layout: Layout,
}

impl TransportCipher {
    pub fn new(mode: &str, key: &[u8; 32]) -> Result<Self, String> {
        let aes = || Cipher::Aes(Box::new(Aes256Gcm::new(&(*key).into())));
        let sbox = || {
            use crypto_secretbox::KeyInit as _;
            Cipher::SecretBox(Box::new(XSalsa20Poly1305::new(key.into())))
        };
        let (cipher, layout) = match mode {
            "aead_aes256_gcm_rtpsize" => (aes(), Layout::RtpSize),
            "aead_xchacha20_poly1305_rtpsize" => (
                Cipher::XChaCha(Box::new(XChaCha20Poly1305::new(&(*key).into()))),
                Layout::RtpSize,
            ),
            "xsalsa20_poly1305_lite_rtpsize" => (sbox(), Layout::RtpSize),
            "aead_aes256_gcm" => (aes(), Layout::FixedHeaderCounter),
            "xsalsa20_poly1305" => (sbox(), Layout::HeaderNonce),
            "xsalsa20_poly1305_suffix" => (sbox(), Layout::Suffix),
            "xsalsa20_poly1305_lite" => (sbox(), Layout::Lite),
            other => return Err(format!("unknown transport mode {other:?}")),
        };
        Ok(TransportCipher { cipher, layout })
    }

    /// Authenticates and decrypts one packet, then strips the encrypted extension body and RTP
    /// padding, leaving the media payload.
    pub fn decrypt(&self, pkt: &[u8], hdr: &RtpHeader) -> Result<Decrypted, String> {
        let clear_len = match self.layout {
            Layout::RtpSize => hdr.rtpsize_aad_len(),
            _ => 12,
        };
        let trailer = match self.layout {
            Layout::RtpSize | Layout::FixedHeaderCounter | Layout::Lite => 4,
            Layout::Suffix => 24,
            Layout::HeaderNonce => 0,
        };
        if pkt.len() < clear_len + TAG + trailer {
            return Err(format!(
                "{} bytes cannot hold a {clear_len}-byte header, a tag and a {trailer}-byte nonce",
                pkt.len()
            ));
        }
        let mut nonce = [0u8; 24];
        match self.layout {
            Layout::HeaderNonce => nonce[..12].copy_from_slice(&pkt[..12]),
            _ => nonce[..trailer].copy_from_slice(&pkt[pkt.len() - trailer..]),
        }
        let aad = &pkt[..clear_len];
        let body = &pkt[clear_len..pkt.len() - trailer];
        let plain = match &self.cipher {
            Cipher::Aes(c) => {
                let n: [u8; 12] = nonce[..12].try_into().map_err(|_| "nonce")?;
                c.decrypt(&n.into(), Payload { msg: body, aad })
                    .map_err(auth_failed)?
            }
            Cipher::XChaCha(c) => c
                .decrypt(&nonce.into(), Payload { msg: body, aad })
                .map_err(auth_failed)?,
            // secretbox has no AAD: the cleartext header is not authenticated in these modes.
            Cipher::SecretBox(c) => {
                use crypto_secretbox::aead::Aead as _;
                c.decrypt(crypto_secretbox::Nonce::from_slice(&nonce), body)
                    .map_err(auth_failed)?
            }
        };
        // Under _rtpsize the extension body is encrypted; in the legacy modes it sits in the
        // clear header region we did not strip, so only the payload offset differs.
        let skip = match (self.layout, hdr.ext_body_len) {
            (Layout::RtpSize, Some(n)) => n,
            _ => 0,
        };
        let mut payload = plain
            .get(skip..)
            .ok_or("extension body longer than the decrypted data")?
            .to_vec();
        if hdr.padding {
            let pad = usize::from(*payload.last().ok_or("P=1 on an empty payload")?);
            if pad == 0 || pad > payload.len() {
                return Err(format!("bad RTP padding count {pad}"));
            }
            payload.truncate(payload.len() - pad);
        }
        Ok(Decrypted { payload, nonce })
    }
}

fn auth_failed<E>(_: E) -> String {
    "authentication failed (wrong key, nonce or AAD)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut h = vec![0x80, 0x78];
        h.extend_from_slice(&seq.to_be_bytes());
        h.extend_from_slice(&ts.to_be_bytes());
        h.extend_from_slice(&ssrc.to_be_bytes());
        h
    }

    fn seal_aes(key: &[u8; 32], hdr: &[u8], payload: &[u8], ctr: u32) -> Vec<u8> {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&ctr.to_be_bytes());
        let ct = Aes256Gcm::new(&(*key).into())
            .encrypt(
                &n.into(),
                Payload {
                    msg: payload,
                    aad: hdr,
                },
            )
            .expect("encrypt");
        [hdr, &ct, &ctr.to_be_bytes()].concat()
    }

    #[test]
    fn parses_header_fields() {
        let h = parse_header(&header(7, 960, 42)).expect("valid");
        assert_eq!(
            (h.payload_type, h.seq, h.timestamp, h.ssrc),
            (120, 7, 960, 42)
        );
        assert_eq!(h.rtpsize_aad_len(), 12);
        assert!(parse_header(&[0x40; 12]).is_err(), "version 1 is not RTP");
        assert!(parse_header(&[0x80; 11]).is_err());
        let mut x = header(1, 1, 1);
        x[0] |= 0x10; // X=1 without a preamble
        assert!(parse_header(&x).is_err());
    }

    #[test]
    fn aes_rtpsize_roundtrip_and_wrong_key() {
        let key = [7u8; 32];
        let hdr = header(1, 960, 5);
        let pkt = seal_aes(&key, &hdr, &SILENCE, 42);
        let h = parse_header(&pkt).expect("hdr");
        let c = TransportCipher::new("aead_aes256_gcm_rtpsize", &key).expect("mode");
        let d = c.decrypt(&pkt, &h).expect("decrypts");
        assert_eq!(d.payload, SILENCE);
        assert_eq!(&d.nonce[..4], &42u32.to_be_bytes());
        let wrong = TransportCipher::new("aead_aes256_gcm_rtpsize", &[8u8; 32]).expect("mode");
        assert!(wrong.decrypt(&pkt, &h).is_err());
        let mut tampered = pkt.clone();
        tampered[3] ^= 1; // the header is AAD
        assert!(
            c.decrypt(&tampered, &parse_header(&tampered).expect("hdr"))
                .is_err()
        );
    }

    #[test]
    fn rtpsize_extension_body_is_encrypted_and_stripped() {
        let key = [1u8; 32];
        let mut hdr = header(1, 0, 9);
        hdr[0] |= 0x10;
        hdr.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01]); // one 32-bit word of extension
        let plain = [[0xAA, 0xBB, 0xCC, 0xDD].as_slice(), b"opus"].concat();
        let pkt = seal_aes(&key, &hdr, &plain, 1);
        let h = parse_header(&pkt).expect("hdr");
        assert_eq!(h.rtpsize_aad_len(), 16);
        let c = TransportCipher::new("aead_aes256_gcm_rtpsize", &key).expect("mode");
        assert_eq!(c.decrypt(&pkt, &h).expect("ok").payload, b"opus");
    }

    #[test]
    fn xchacha_rtpsize_roundtrip() {
        let key = [3u8; 32];
        let hdr = header(9, 9, 9);
        let mut n = [0u8; 24];
        n[..4].copy_from_slice(&5u32.to_be_bytes());
        let ct = XChaCha20Poly1305::new(&key.into())
            .encrypt(
                &n.into(),
                Payload {
                    msg: b"abc",
                    aad: &hdr,
                },
            )
            .expect("encrypt");
        let pkt = [&hdr[..], &ct, &5u32.to_be_bytes()].concat();
        let c = TransportCipher::new("aead_xchacha20_poly1305_rtpsize", &key).expect("mode");
        let d = c
            .decrypt(&pkt, &parse_header(&pkt).expect("hdr"))
            .expect("ok");
        assert_eq!(d.payload, b"abc");
        assert!(
            TransportCipher::new("aead_aes256_gcm_rtpsize", &key)
                .expect("mode")
                .decrypt(&pkt, &parse_header(&pkt).expect("hdr"))
                .is_err()
        );
    }

    #[test]
    fn every_mode_of_the_doc_is_known() {
        for m in [
            "aead_aes256_gcm_rtpsize",
            "aead_xchacha20_poly1305_rtpsize",
            "xsalsa20_poly1305_lite_rtpsize",
            "aead_aes256_gcm",
            "xsalsa20_poly1305",
            "xsalsa20_poly1305_suffix",
            "xsalsa20_poly1305_lite",
        ] {
            assert!(TransportCipher::new(m, &[0; 32]).is_ok(), "{m}");
        }
    }

    #[test]
    fn legacy_secretbox_lite_roundtrip() {
        use crypto_secretbox::aead::{Aead as _, KeyInit as _};
        let key = [9u8; 32];
        let hdr = header(3, 3, 3);
        let mut n = [0u8; 24];
        n[..4].copy_from_slice(&77u32.to_be_bytes());
        let ct = XSalsa20Poly1305::new(&key.into())
            .encrypt(crypto_secretbox::Nonce::from_slice(&n), &b"opus"[..])
            .expect("encrypt");
        let pkt = [&hdr[..], &ct, &77u32.to_be_bytes()].concat();
        let c = TransportCipher::new("xsalsa20_poly1305_lite", &key).expect("mode");
        let d = c
            .decrypt(&pkt, &parse_header(&pkt).expect("hdr"))
            .expect("ok");
        assert_eq!(d.payload, b"opus");
    }

    #[test]
    fn unknown_mode_is_an_error() {
        assert!(TransportCipher::new("plain", &[0; 32]).is_err());
    }
}
