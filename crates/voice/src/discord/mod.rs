//! Every byte of Discord: main gateway, voice gateway v8, UDP/RTP and transport encryption.

pub mod close_codes;
pub mod crypto;
pub mod gateway;
pub mod rest;
pub mod rtp;
pub mod udp;
pub mod voice_gateway;
pub mod ws;

use std::time::Duration;

/// The heartbeat interval a Hello asks for, kept within what a live server could mean: a
/// missing or absurd value (0, 1e300 — `Duration` panics past u64 seconds) must neither kill the
/// task nor flood the server, so it is clamped to 1 s ..= 2 min; no number at all → `default`.
pub fn heartbeat_interval(hello: &serde_json::Value, default: Duration) -> Duration {
    const BOUNDS: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(120));
    match hello
        .get("heartbeat_interval")
        .and_then(serde_json::Value::as_f64)
    {
        Some(ms) if ms.is_finite() => Duration::from_secs_f64(
            (ms / 1000.0).clamp(BOUNDS.0.as_secs_f64(), BOUNDS.1.as_secs_f64()),
        ),
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn heartbeat_interval_survives_absurd_hellos() {
        let default = Duration::from_millis(13_750);
        let of = |d: serde_json::Value| heartbeat_interval(&d, default);
        assert_eq!(of(json!({"heartbeat_interval": 13750})), default);
        assert_eq!(
            of(json!({"heartbeat_interval": 41250.5})),
            Duration::from_millis(41_250) + Duration::from_micros(500)
        );
        assert_eq!(
            of(json!({"heartbeat_interval": 1e300})),
            Duration::from_secs(120)
        );
        assert_eq!(of(json!({"heartbeat_interval": 0})), Duration::from_secs(1));
        assert_eq!(
            of(json!({"heartbeat_interval": -5})),
            Duration::from_secs(1)
        );
        assert_eq!(of(json!({"heartbeat_interval": "fast"})), default);
        assert_eq!(of(json!(null)), default);
    }
}
