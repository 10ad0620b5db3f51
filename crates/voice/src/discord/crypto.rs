//! Transport encryption between the bot and Discord's media server (docs/protocol.md §5).
//!
//! Today's Discord offers `aead_aes256_gcm_rtpsize` (preferred, when the server hardware has
//! it) and `aead_xchacha20_poly1305_rtpsize` (always). The xsalsa20 family was switched off on
//! 2024-11-18; it is kept only for a server that offers nothing else.

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce as GcmNonce};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::AeadInPlace as LegacyAeadInPlace;

/// Poly1305 and GCM tags are both 16 bytes.
pub const TAG_LEN: usize = 16;
/// The 32-bit nonce counter appended to every `_lite` and `_rtpsize` packet.
pub const NONCE_COUNTER_LEN: usize = 4;
/// The random nonce appended by the legacy `_suffix` mode.
const SUFFIX_NONCE_LEN: usize = 24;

/// A transport encryption mode, as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportMode {
    AeadAes256GcmRtpsize,
    AeadXChaCha20Poly1305Rtpsize,
    XSalsa20Poly1305LiteRtpsize,
    XSalsa20Poly1305Lite,
    XSalsa20Poly1305Suffix,
    XSalsa20Poly1305,
}

impl TransportMode {
    /// Our preference, best first: the two AEAD modes Discord supports today, then the
    /// discontinued legacy modes for a server that offers nothing else.
    pub const PREFERENCE: [TransportMode; 6] = [
        TransportMode::AeadAes256GcmRtpsize,
        TransportMode::AeadXChaCha20Poly1305Rtpsize,
        TransportMode::XSalsa20Poly1305LiteRtpsize,
        TransportMode::XSalsa20Poly1305Lite,
        TransportMode::XSalsa20Poly1305Suffix,
        TransportMode::XSalsa20Poly1305,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransportMode::AeadAes256GcmRtpsize => "aead_aes256_gcm_rtpsize",
            TransportMode::AeadXChaCha20Poly1305Rtpsize => "aead_xchacha20_poly1305_rtpsize",
            TransportMode::XSalsa20Poly1305LiteRtpsize => "xsalsa20_poly1305_lite_rtpsize",
            TransportMode::XSalsa20Poly1305Lite => "xsalsa20_poly1305_lite",
            TransportMode::XSalsa20Poly1305Suffix => "xsalsa20_poly1305_suffix",
            TransportMode::XSalsa20Poly1305 => "xsalsa20_poly1305",
        }
    }

    pub fn parse(name: &str) -> Option<TransportMode> {
        Self::PREFERENCE.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether Discord still accepts this mode (the others were discontinued in 2024).
    pub fn is_current(self) -> bool {
        matches!(
            self,
            TransportMode::AeadAes256GcmRtpsize | TransportMode::AeadXChaCha20Poly1305Rtpsize
        )
    }

    /// Picks the best mode the server offers that we implement.
    pub fn choose<S: AsRef<str>>(offered: &[S]) -> Option<TransportMode> {
        Self::PREFERENCE
            .into_iter()
            .find(|m| offered.iter().any(|o| o.as_ref() == m.as_str()))
    }
}

impl fmt::Display for TransportMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport key could not be used, or a packet failed to authenticate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the transport key must be 32 bytes, got {0}")]
    BadKeyLength(usize),
    #[error("packet too short to hold a tag and nonce")]
    TooShort,
    #[error("packet failed authentication (wrong key or tampered)")]
    Unauthentic,
}

enum Cipher {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
    XSalsa(Box<XSalsa20Poly1305>),
}

/// One session's transport cipher: the key from Session Description plus the nonce counter.
///
/// The counter starts at 0 and is incremented before use (first nonce 1). It must never repeat
/// under one key: a resume keeps this object (and so the counter); a new Session Description
/// builds a new one.
pub struct TransportCipher {
    mode: TransportMode,
    cipher: Cipher,
    nonce: u32,
}

impl fmt::Debug for TransportCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TransportCipher")
            .field("mode", &self.mode)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl TransportCipher {
    pub fn new(mode: TransportMode, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != 32 {
            return Err(CryptoError::BadKeyLength(key.len()));
        }
        let cipher = match mode {
            TransportMode::AeadAes256GcmRtpsize => Cipher::Aes(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength(key.len()))?,
            )),
            TransportMode::AeadXChaCha20Poly1305Rtpsize => Cipher::XChaCha(Box::new(
                XChaCha20Poly1305::new_from_slice(key)
                    .map_err(|_| CryptoError::BadKeyLength(key.len()))?,
            )),
            _ => Cipher::XSalsa(Box::new(
                <XSalsa20Poly1305 as crypto_secretbox::KeyInit>::new_from_slice(key)
                    .map_err(|_| CryptoError::BadKeyLength(key.len()))?,
            )),
        };
        Ok(Self {
            mode,
            cipher,
            nonce: 0,
        })
    }

    pub fn mode(&self) -> TransportMode {
        self.mode
    }

    /// The last nonce counter used (0 before the first packet).
    pub fn nonce_counter(&self) -> u32 {
        self.nonce
    }

    /// Writes `header ‖ sealed(payload)` into `out` (cleared first), laid out for the mode.
    ///
    /// `out` keeps its capacity between calls, so steady-state sealing does not allocate.
    pub fn seal(&mut self, header: &[u8], payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(header);
        let body_start = out.len();
        out.extend_from_slice(payload);
        // Every mode counts packets; the `_lite` and `_rtpsize` ones put the counter on the wire.
        self.nonce = self.nonce.wrapping_add(1);
        let ctr = self.nonce.to_be_bytes();
        let (aad, body) = out.split_at_mut(body_start);
        let tag = match &self.cipher {
            Cipher::Aes(c) => {
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(&ctr);
                c.encrypt_inout_detached(&GcmNonce::from(nonce), aad, body.into())
                    .expect("AES-GCM cannot fail on a packet-sized buffer")
                    .into()
            }
            Cipher::XChaCha(c) => {
                let mut nonce = [0u8; 24];
                nonce[..4].copy_from_slice(&ctr);
                c.encrypt_inout_detached(&XNonce::from(nonce), aad, body.into())
                    .expect("XChaCha20-Poly1305 cannot fail on a packet-sized buffer")
                    .into()
            }
            Cipher::XSalsa(c) => {
                seal_legacy(c, self.mode, ctr, header, body_start, out);
                return;
            }
        };
        let tag: [u8; TAG_LEN] = tag;
        out.extend_from_slice(&tag);
        out.extend_from_slice(&ctr);
    }

    /// Opens a packet sealed in this mode (the header length is given by the caller, who parsed
    /// the RTP header). Returns the nonce counter (for `_lite`/`_rtpsize` modes) and the payload.
    pub fn open(&self, packet: &[u8], header_len: usize) -> Result<(u32, Vec<u8>), CryptoError> {
        if packet.len() < header_len {
            return Err(CryptoError::TooShort);
        }
        let (aad, rest) = packet.split_at(header_len);
        match &self.cipher {
            Cipher::Aes(_) | Cipher::XChaCha(_) => {
                if rest.len() < TAG_LEN + NONCE_COUNTER_LEN {
                    return Err(CryptoError::TooShort);
                }
                let (sealed, ctr) = rest.split_at(rest.len() - NONCE_COUNTER_LEN);
                let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
                let mut body = ct.to_vec();
                let ok = match &self.cipher {
                    Cipher::Aes(c) => {
                        let mut n = [0u8; 12];
                        n[..4].copy_from_slice(ctr);
                        c.decrypt_inout_detached(
                            &GcmNonce::from(n),
                            aad,
                            body.as_mut_slice().into(),
                            tag.try_into().map_err(|_| CryptoError::TooShort)?,
                        )
                    }
                    Cipher::XChaCha(c) => {
                        let mut n = [0u8; 24];
                        n[..4].copy_from_slice(ctr);
                        c.decrypt_inout_detached(
                            &XNonce::from(n),
                            aad,
                            body.as_mut_slice().into(),
                            tag.try_into().map_err(|_| CryptoError::TooShort)?,
                        )
                    }
                    Cipher::XSalsa(_) => unreachable!("matched above"),
                };
                ok.map_err(|_| CryptoError::Unauthentic)?;
                let counter =
                    u32::from_be_bytes(ctr.try_into().map_err(|_| CryptoError::TooShort)?);
                Ok((counter, body))
            }
            Cipher::XSalsa(c) => {
                let mut nonce = [0u8; 24];
                let (sealed, counter) = match self.mode {
                    TransportMode::XSalsa20Poly1305 => {
                        // The nonce is the 12-byte RTP header; a shorter "header" is not RTP
                        // (found by fuzzing: it used to panic here).
                        let header = aad.get(..12).ok_or(CryptoError::TooShort)?;
                        nonce[..12].copy_from_slice(header);
                        (rest, 0)
                    }
                    TransportMode::XSalsa20Poly1305Suffix => {
                        if rest.len() < TAG_LEN + SUFFIX_NONCE_LEN {
                            return Err(CryptoError::TooShort);
                        }
                        let (s, n) = rest.split_at(rest.len() - SUFFIX_NONCE_LEN);
                        nonce.copy_from_slice(n);
                        (s, 0)
                    }
                    _ => {
                        if rest.len() < TAG_LEN + NONCE_COUNTER_LEN {
                            return Err(CryptoError::TooShort);
                        }
                        let (s, n) = rest.split_at(rest.len() - NONCE_COUNTER_LEN);
                        nonce[..4].copy_from_slice(n);
                        let ctr =
                            u32::from_be_bytes(n.try_into().map_err(|_| CryptoError::TooShort)?);
                        (s, ctr)
                    }
                };
                if sealed.len() < TAG_LEN {
                    return Err(CryptoError::TooShort);
                }
                let (tag, ct) = sealed.split_at(TAG_LEN);
                let mut body = ct.to_vec();
                c.decrypt_in_place_detached(
                    crypto_secretbox::Nonce::from_slice(&nonce),
                    b"",
                    &mut body,
                    crypto_secretbox::Tag::from_slice(tag),
                )
                .map_err(|_| CryptoError::Unauthentic)?;
                Ok((counter, body))
            }
        }
    }
}

/// The xsalsa20 family: secretbox with no AAD and the tag in front of the ciphertext.
fn seal_legacy(
    c: &XSalsa20Poly1305,
    mode: TransportMode,
    ctr: [u8; 4],
    header: &[u8],
    body_start: usize,
    out: &mut Vec<u8>,
) {
    let mut nonce = [0u8; 24];
    let mut suffix = [0u8; SUFFIX_NONCE_LEN];
    let suffix_len = match mode {
        TransportMode::XSalsa20Poly1305 => {
            let n = header.len().min(12);
            nonce[..n].copy_from_slice(&header[..n]);
            0
        }
        TransportMode::XSalsa20Poly1305Suffix => {
            nonce = rand::random();
            suffix = nonce;
            SUFFIX_NONCE_LEN
        }
        _ => {
            nonce[..4].copy_from_slice(&ctr);
            suffix[..4].copy_from_slice(&ctr);
            NONCE_COUNTER_LEN
        }
    };
    let tag = c
        .encrypt_in_place_detached(
            crypto_secretbox::Nonce::from_slice(&nonce),
            b"",
            &mut out[body_start..],
        )
        .expect("secretbox cannot fail on a packet-sized buffer");
    out.splice(body_start..body_start, tag.iter().copied());
    out.extend_from_slice(&suffix[..suffix_len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::rtp::write_header;

    const KEY: [u8; 32] = [7; 32];

    /// Found by fuzzing (`fuzz/corpus/transport_open/finding-xsalsa-short-header`): a packet
    /// whose "RTP header" is shorter than the 12 bytes the legacy mode takes its nonce from.
    #[test]
    fn a_header_shorter_than_rtp_is_an_error_in_every_mode() {
        for mode in TransportMode::PREFERENCE {
            let cipher = TransportCipher::new(mode, &[7; 32]).unwrap();
            assert!(cipher.open(&[0; 40], 6).is_err(), "{mode:?}");
        }
    }

    #[test]
    fn prefers_aes_gcm_then_xchacha_and_legacy_only_as_last_resort() {
        let all = [
            "xsalsa20_poly1305",
            "aead_xchacha20_poly1305_rtpsize",
            "aead_aes256_gcm_rtpsize",
        ];
        assert_eq!(
            TransportMode::choose(&all),
            Some(TransportMode::AeadAes256GcmRtpsize)
        );
        let no_aes = ["xsalsa20_poly1305_lite", "aead_xchacha20_poly1305_rtpsize"];
        assert_eq!(
            TransportMode::choose(&no_aes),
            Some(TransportMode::AeadXChaCha20Poly1305Rtpsize)
        );
        let legacy = ["xsalsa20_poly1305_suffix", "xsalsa20_poly1305"];
        assert_eq!(
            TransportMode::choose(&legacy),
            Some(TransportMode::XSalsa20Poly1305Suffix)
        );
        assert_eq!(TransportMode::choose(&["aead_aes256_gcm"]), None);
    }

    /// The worked example of docs/protocol.md §5.2, built straight from the cipher crate: the AAD
    /// is the 12-byte header, the nonce is the counter in the first 4 of 12 bytes, the tag
    /// follows the ciphertext and the counter ends the packet.
    #[test]
    fn aes_gcm_layout_matches_the_worked_example() {
        let header = write_header(1, 2, 3);
        let mut c = TransportCipher::new(TransportMode::AeadAes256GcmRtpsize, &KEY).unwrap();
        let mut packet = Vec::new();
        c.seal(&header, b"opus-frame", &mut packet);
        assert_eq!(&packet[..12], &header);
        assert_eq!(&packet[packet.len() - 4..], &[0, 0, 0, 1]);
        assert_eq!(packet.len(), 12 + 10 + 16 + 4);

        let reference = Aes256Gcm::new_from_slice(&KEY).unwrap();
        let mut body = b"opus-frame".to_vec();
        let tag = reference
            .encrypt_inout_detached(
                &GcmNonce::from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
                &header,
                body.as_mut_slice().into(),
            )
            .unwrap();
        assert_eq!(&packet[12..22], &body[..]);
        assert_eq!(&packet[22..38], &tag[..]);
    }

    #[test]
    fn every_mode_round_trips_and_counts_nonces() {
        for mode in TransportMode::PREFERENCE {
            let header = write_header(9, 960, 42);
            let mut tx = TransportCipher::new(mode, &KEY).unwrap();
            let rx = TransportCipher::new(mode, &KEY).unwrap();
            let mut packet = Vec::new();
            for i in 1..=3u32 {
                tx.seal(&header, &[i as u8; 50], &mut packet);
                let (ctr, body) = rx
                    .open(&packet, 12)
                    .unwrap_or_else(|e| panic!("{mode}: {e}"));
                assert_eq!(body, vec![i as u8; 50], "{mode}");
                if !matches!(
                    mode,
                    TransportMode::XSalsa20Poly1305 | TransportMode::XSalsa20Poly1305Suffix
                ) {
                    assert_eq!(ctr, i, "{mode}");
                }
            }
        }
    }

    #[test]
    fn wrong_key_and_tampering_are_rejected() {
        let header = write_header(1, 1, 1);
        let mut tx =
            TransportCipher::new(TransportMode::AeadXChaCha20Poly1305Rtpsize, &KEY).unwrap();
        let other =
            TransportCipher::new(TransportMode::AeadXChaCha20Poly1305Rtpsize, &[8; 32]).unwrap();
        let mut packet = Vec::new();
        tx.seal(&header, b"hello", &mut packet);
        assert_eq!(other.open(&packet, 12), Err(CryptoError::Unauthentic));
        packet[3] ^= 1; // the header is authenticated data
        let same = TransportCipher::new(TransportMode::AeadXChaCha20Poly1305Rtpsize, &KEY).unwrap();
        assert_eq!(same.open(&packet, 12), Err(CryptoError::Unauthentic));
        assert_eq!(same.open(&packet[..20], 12), Err(CryptoError::TooShort));
        assert!(TransportCipher::new(TransportMode::AeadAes256GcmRtpsize, &[0; 31]).is_err());
    }
}
