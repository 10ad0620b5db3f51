//! A ready two-member DAVE group built the way the gateway builds one (external Add, commit,
//! welcome, transition), for benchmarks and tests of the media path without any sockets.

use std::num::NonZeroU16;

use davey::{DaveSession, ProposalsOperationType};

use super::external_sender::{ExternalSender, append_body};

/// Returns sessions for users `a` and `b` in one group for `channel_id`, both able to encrypt
/// and each able to decrypt the other.
pub fn ready_pair(a: u64, b: u64, channel_id: u64) -> anyhow::Result<(DaveSession, DaveSession)> {
    let err = |what: &str, e: &dyn std::fmt::Debug| anyhow::anyhow!("{what}: {e:?}");
    let gateway = ExternalSender::new()?;
    let v1 = NonZeroU16::MIN;
    let mut sa = DaveSession::new(v1, a, channel_id, None).map_err(|e| err("session a", &e))?;
    let mut sb = DaveSession::new(v1, b, channel_id, None).map_err(|e| err("session b", &e))?;
    for s in [&mut sa, &mut sb] {
        s.set_external_sender(&gateway.package)
            .map_err(|e| err("external sender", &e))?;
    }
    sa.create_key_package()
        .map_err(|e| err("key package a", &e))?;
    let kp_b = sb
        .create_key_package()
        .map_err(|e| err("key package b", &e))?;
    let kp_b = gateway
        .validate_key_package(&kp_b, b)
        .map_err(|e| anyhow::anyhow!(e))?;
    let add = gateway.add(kp_b, channel_id, 0)?;
    let body = append_body(&[&add.message])?;
    let users = [a, b];
    let cw = sa
        .process_proposals(ProposalsOperationType::APPEND, &body[1..], Some(&users))
        .map_err(|e| err("proposals", &e))?
        .ok_or_else(|| anyhow::anyhow!("no commit for the add"))?;
    sa.process_commit(&cw.commit)
        .map_err(|e| err("commit", &e))?;
    let welcome = cw
        .welcome
        .ok_or_else(|| anyhow::anyhow!("no welcome for the add"))?;
    sb.process_welcome(&welcome, Some(&users))
        .map_err(|e| err("welcome", &e))?;
    for s in [&mut sa, &mut sb] {
        s.prepare_transition(1, 1).map_err(|e| err("prepare", &e))?;
        s.execute_transition(1).map_err(|e| err("execute", &e))?;
    }
    Ok((sa, sb))
}

#[cfg(test)]
mod tests {
    use davey::MediaType;

    use super::*;

    #[test]
    fn both_encrypt_and_each_decrypts_the_other() {
        let (mut a, mut b) = ready_pair(11, 22, 7).unwrap();
        assert!(a.can_encrypt() && b.can_encrypt());
        let frame = vec![0x78u8; 60];
        let sealed = a.encrypt_opus(&frame).unwrap().into_owned();
        assert_ne!(sealed, frame);
        assert_eq!(b.decrypt(11, MediaType::AUDIO, &sealed).unwrap(), frame);
        let back = b.encrypt_opus(&frame).unwrap().into_owned();
        assert_eq!(a.decrypt(22, MediaType::AUDIO, &back).unwrap(), frame);
    }
}
