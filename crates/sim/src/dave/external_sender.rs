//! The voice gateway's MLS role (docs/protocol.md §8.2–8.4): the one external sender of every
//! DAVE group. It signs Add and Remove proposals, computes their ProposalRefs for revokes, and
//! validates key packages. It is never a group member and never builds an `MlsGroup`.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use sha2::{Digest, Sha256};

/// DAVE v1's only ciphersuite (docs/protocol.md §6.3).
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
/// The credential identity the simulated gateway uses (libdave and davey tests use the same).
const IDENTITY: [u8; 4] = [0, 1, 1, 0];

pub struct ExternalSender {
    signer: SignatureKeyPair,
    provider: OpenMlsRustCrypto,
    /// op 25 payload: the TLS-serialised `ExternalSender`.
    pub package: Vec<u8>,
}

/// A signed proposal as sent in op 27, with its ref.
pub struct SignedProposal {
    pub message: Vec<u8>,
    pub proposal_ref: [u8; 32],
}

impl ExternalSender {
    pub fn new() -> anyhow::Result<Self> {
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
            .map_err(|e| anyhow::anyhow!("P-256 key pair: {e:?}"))?;
        let sender = openmls::prelude::ExternalSender::new(
            signer.public().into(),
            BasicCredential::new(IDENTITY.to_vec()).into(),
        );
        let package = sender.tls_serialize_detached()?;
        Ok(ExternalSender {
            signer,
            provider: OpenMlsRustCrypto::default(),
            package,
        })
    }

    /// Validates an op 26 payload for `user_id` (docs/protocol.md §6.3): a bare KeyPackage (or one
    /// wrapped in an MLSMessage), valid signatures, ciphersuite 2, a basic credential holding
    /// BE64(user id), lifetime exactly 0..u64::MAX.
    pub fn validate_key_package(&self, bytes: &[u8], user_id: u64) -> Result<KeyPackage, String> {
        let kp_in = match KeyPackageIn::tls_deserialize_exact_bytes(bytes) {
            Ok(k) => k,
            Err(bare) => {
                match MlsMessageIn::tls_deserialize_exact_bytes(bytes).map(|m| m.extract()) {
                    Ok(MlsMessageBodyIn::KeyPackage(k)) => k,
                    _ => return Err(format!("not a KeyPackage: {bare}")),
                }
            }
        };
        let kp = kp_in
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| format!("key package does not validate: {e}"))?;
        if kp.ciphersuite() != CIPHERSUITE {
            return Err(format!(
                "ciphersuite {:?}, DAVE v1 needs 2",
                kp.ciphersuite()
            ));
        }
        let cred = kp.leaf_node().credential();
        if cred.credential_type() != CredentialType::Basic {
            return Err(format!(
                "credential type {:?}, DAVE needs basic",
                cred.credential_type()
            ));
        }
        if cred.serialized_content() != user_id.to_be_bytes() {
            return Err(format!(
                "credential identity {:02x?} is not BE64({user_id})",
                cred.serialized_content()
            ));
        }
        let l = kp.life_time();
        if l.not_before() == 0 && l.not_after() == u64::MAX {
            Ok(kp)
        } else {
            Err(format!(
                "lifetime {}..{}, DAVE needs 0..u64::MAX",
                l.not_before(),
                l.not_after()
            ))
        }
    }

    /// The KeyPackageRef a Welcome names the key package's owner by.
    pub fn key_package_ref(&self, kp: &KeyPackage) -> Option<Vec<u8>> {
        kp.hash_ref(self.provider.crypto())
            .ok()
            .map(|r| r.as_slice().to_vec())
    }

    pub fn add(
        &self,
        kp: KeyPackage,
        channel_id: u64,
        epoch: u64,
    ) -> anyhow::Result<SignedProposal> {
        let msg = ExternalProposal::new_add::<OpenMlsRustCrypto>(
            kp,
            group_id(channel_id),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .map_err(|e| anyhow::anyhow!("external add: {e:?}"))?;
        signed(msg)
    }

    pub fn remove(&self, leaf: u32, channel_id: u64, epoch: u64) -> anyhow::Result<SignedProposal> {
        let msg = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            LeafNodeIndex::new(leaf),
            group_id(channel_id),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .map_err(|e| anyhow::anyhow!("external remove: {e:?}"))?;
        signed(msg)
    }
}

pub fn group_id(channel_id: u64) -> GroupId {
    GroupId::from_slice(&channel_id.to_be_bytes())
}

fn signed(msg: MlsMessageOut) -> anyhow::Result<SignedProposal> {
    let message = msg.tls_serialize_detached()?;
    let proposal_ref = proposal_ref(&message)?;
    Ok(SignedProposal {
        message,
        proposal_ref,
    })
}

/// RFC 9420 ProposalRef of an external sender's PublicMessage (docs/protocol.md §8.4):
/// SHA-256(<V>"MLS 1.0 Proposal Reference" ‖ <V>AuthenticatedContent), where the
/// AuthenticatedContent is the MLSMessage without its 2-byte version (no membership tag).
pub fn proposal_ref(message: &[u8]) -> anyhow::Result<[u8; 32]> {
    let content = message
        .get(2..)
        .ok_or_else(|| anyhow::anyhow!("message too short"))?;
    let label = VLBytes::new(b"MLS 1.0 Proposal Reference".to_vec()).tls_serialize_detached()?;
    let value = VLBytes::new(content.to_vec()).tls_serialize_detached()?;
    let mut h = Sha256::new();
    h.update(label);
    h.update(value);
    Ok(h.finalize().into())
}

/// op 27 append body after the op-type byte: one `<V>` vector of concatenated MLSMessages.
pub fn append_body(messages: &[&[u8]]) -> anyhow::Result<Vec<u8>> {
    let mut out = vec![0u8];
    out.extend(VLBytes::new(messages.concat()).tls_serialize_detached()?);
    Ok(out)
}

/// op 27 revoke body: `<V>( <V>ref ‖ <V>ref … )`.
pub fn revoke_body(refs: &[[u8; 32]]) -> anyhow::Result<Vec<u8>> {
    let mut inner = Vec::new();
    for r in refs {
        inner.extend(VLBytes::new(r.to_vec()).tls_serialize_detached()?);
    }
    let mut out = vec![1u8];
    out.extend(VLBytes::new(inner).tls_serialize_detached()?);
    Ok(out)
}
