//! Reading what DAVE clients send: the op 28 commit (split from its Welcome and opened far enough
//! to judge it, RFC 9420 §6 and §12.4) and the JSON transition ops.

use openmls::prelude::*;

/// The parts of an op 28 commit the gateway judges.
#[derive(Debug)]
pub struct CommitInfo {
    /// The commit MLSMessage, exactly as sent (forwarded in op 29).
    pub commit: Vec<u8>,
    /// The raw Welcome that followed it, if any (forwarded in op 30).
    pub welcome: Option<Vec<u8>>,
    /// KeyPackageRefs the Welcome has group secrets for.
    pub welcomed: Vec<Vec<u8>>,
    pub group_id: Vec<u8>,
    pub epoch: u64,
    /// Leaf index of a member sender.
    pub sender_leaf: u32,
    /// The ProposalRefs the commit covers.
    pub refs: Vec<Vec<u8>>,
}

/// Splits and parses an op 28 payload (after the op byte). Err is the reason it is invalid.
pub fn parse_commit(payload: &[u8]) -> Result<CommitInfo, String> {
    let (msg, rest) = MlsMessageIn::tls_deserialize_bytes(payload)
        .map_err(|e| format!("commit is not an MLSMessage: {e}"))?;
    let commit = payload[..payload.len() - rest.len()].to_vec();
    let (welcome, welcomed) = if rest.is_empty() {
        (None, Vec::new())
    } else {
        let w = Welcome::tls_deserialize_exact_bytes(rest)
            .map_err(|e| format!("bytes after the commit are not a Welcome: {e}"))?;
        let refs = w
            .secrets()
            .iter()
            .map(|s| s.new_member().as_slice().to_vec())
            .collect();
        (Some(rest.to_vec()), refs)
    };
    if msg.wire_format() != WireFormat::PublicMessage {
        return Err(format!(
            "commit wire format {:?}: DAVE handshakes are PublicMessages",
            msg.wire_format()
        ));
    }
    let mut r = Reader {
        b: &commit,
        pos: 4, // version u16, wire_format u16
    };
    let group_id = r.vec().ok_or("truncated group_id")?.to_vec();
    let epoch = r.u64().ok_or("truncated epoch")?;
    let sender_type = r.u8().ok_or("truncated sender")?;
    if sender_type != 1 {
        return Err(format!(
            "commit sender type {sender_type}: only a member (1) commits in DAVE"
        ));
    }
    let sender_leaf = r.u32().ok_or("truncated sender leaf")?;
    r.vec().ok_or("truncated authenticated_data")?;
    let content_type = r.u8().ok_or("truncated content type")?;
    if content_type != 3 {
        return Err(format!("content type {content_type} is not a commit (3)"));
    }
    let proposals = r.vec().ok_or("truncated proposals")?;
    let mut p = Reader {
        b: proposals,
        pos: 0,
    };
    let mut refs = Vec::new();
    while p.pos < proposals.len() {
        match p.u8() {
            Some(2) => refs.push(p.vec().ok_or("truncated proposal ref")?.to_vec()),
            Some(1) => {
                return Err(
                    "commit carries an inline proposal; DAVE commits by reference only".into(),
                );
            }
            other => return Err(format!("bad ProposalOrRef type {other:?}")),
        }
    }
    Ok(CommitInfo {
        commit,
        welcome,
        welcomed,
        group_id,
        epoch,
        sender_leaf,
        refs,
    })
}

/// A bounds-checked reader of TLS-presentation bytes with QUIC-style `<V>` lengths.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn vec(&mut self) -> Option<&'a [u8]> {
        let first = *self.b.get(self.pos)?;
        let n = 1usize << (first >> 6);
        if n == 8 {
            return None; // RFC 9420 §2.1.2: the 8-byte form is invalid
        }
        let head = self.take(n)?;
        let len = head[1..]
            .iter()
            .fold(usize::from(first & 0x3f), |a, b| (a << 8) | usize::from(*b));
        self.take(len)
    }
}

/// `transition_id` of an op 23 / op 31 payload, if it is a u16.
pub fn transition_id(d: &serde_json::Value) -> Option<u16> {
    d.get("transition_id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|t| u16::try_from(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quic_varint_vectors() {
        let b = [0x02, 0xAA, 0xBB, 0x40, 0x01, 0xCC, 0xC0];
        let mut r = Reader { b: &b, pos: 0 };
        assert_eq!(r.vec(), Some(&[0xAA, 0xBB][..]));
        assert_eq!(r.vec(), Some(&[0xCC][..]));
        assert_eq!(r.vec(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [&[][..], &[0, 1, 0, 1], &[0xFF; 40]] {
            assert!(parse_commit(junk).is_err());
        }
    }
}
