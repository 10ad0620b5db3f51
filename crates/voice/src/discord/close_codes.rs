//! What a voice gateway close code means and what to do about it (docs/protocol.md §3.4, §9).

/// The engine's next step after the voice socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceCloseAction {
    /// Same endpoint, op 7 Resume with `seq_ack`; UDP, SSRC and keys carry over.
    Resume,
    /// Cannot resume: a full join again (main gateway op 4 → new server update → Identify).
    Rejoin,
    /// Kicked, moved or the call ended: wait for the main gateway to say which.
    AwaitMainGateway,
    /// Never retry (we left, or Discord told us to stop).
    Stop,
}

/// Decides what follows a voice socket closing with `code` (`None`: dropped without a frame).
pub fn voice_close_action(code: Option<u16>) -> VoiceCloseAction {
    match code {
        // A server that closes normally or goes away (1001: a voice server restarting) has
        // ended the session: join again rather than stop, or the rest of the sound is lost.
        // Our own closes never get here (the connection is leaving).
        Some(1000 | 1001) => VoiceCloseAction::Rejoin,
        // Everything else below 4000 is the transport failing: the session survives it.
        None | Some(0..4000) | Some(4015) => VoiceCloseAction::Resume,
        // 4000 is what we close with ourselves to keep a session resumable.
        Some(4000) => VoiceCloseAction::Resume,
        Some(4014 | 4022) => VoiceCloseAction::AwaitMainGateway,
        Some(4017 | 4021) => VoiceCloseAction::Stop,
        Some(_) => VoiceCloseAction::Rejoin,
    }
}

/// Plain words for a voice close code, for status panels and errors.
pub fn voice_close_reason(code: u16) -> &'static str {
    match code {
        1000 => "closed normally",
        1001 => "voice server going away (restart)",
        1006 => "connection lost",
        4001 => "unknown opcode (client bug)",
        4002 => "payload could not be decoded (client bug)",
        4003 => "sent a payload before identifying (client bug)",
        4004 => "voice authentication failed (stale voice token)",
        4005 => "already authenticated (client bug)",
        4006 => "voice session no longer valid",
        4009 => "voice session timed out",
        4011 => "voice server not found",
        4012 => "unknown protocol (client bug)",
        4014 => "disconnected: kicked, moved, or the channel was deleted",
        4015 => "voice server crashed",
        4016 => "unknown encryption mode (client bug)",
        4017 => "E2EE required: this channel only accepts end-to-end encrypted (DAVE) audio",
        4020 => "malformed request (client bug)",
        4021 => "disconnected: rate limited",
        4022 => "disconnected: call terminated",
        _ => "unknown close code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VoiceCloseAction::*;

    #[test]
    fn follows_the_protocol_table() {
        assert_eq!(voice_close_action(None), Resume);
        assert_eq!(voice_close_action(Some(4015)), Resume);
        assert_eq!(voice_close_action(Some(4006)), Rejoin);
        assert_eq!(voice_close_action(Some(4009)), Rejoin);
        assert_eq!(voice_close_action(Some(4004)), Rejoin);
        assert_eq!(voice_close_action(Some(4014)), AwaitMainGateway);
        assert_eq!(voice_close_action(Some(4022)), AwaitMainGateway);
        assert_eq!(voice_close_action(Some(4017)), Stop);
        assert_eq!(voice_close_action(Some(4021)), Stop);
        assert_eq!(voice_close_action(Some(1000)), Rejoin);
        assert_eq!(voice_close_action(Some(1001)), Rejoin);
        assert_eq!(voice_close_action(Some(1011)), Resume);
        assert!(voice_close_reason(4017).contains("E2EE required"));
    }
}
