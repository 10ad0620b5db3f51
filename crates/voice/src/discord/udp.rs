//! The UDP media socket: IP discovery (docs/protocol.md §4.1) and keepalives (§4.4).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

pub const DISCOVERY_LEN: usize = 74;
const DISCOVERY_REQUEST: u16 = 0x0001;
const DISCOVERY_RESPONSE: u16 = 0x0002;
const DISCOVERY_BODY_LEN: u16 = 70;

/// Our address as the media server sees it, to report in Select Protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("UDP socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("no IP discovery answer from {0} after {1} tries")]
    NoAnswer(SocketAddr, u32),
}

pub fn discovery_request(ssrc: u32) -> [u8; DISCOVERY_LEN] {
    let mut p = [0u8; DISCOVERY_LEN];
    p[0..2].copy_from_slice(&DISCOVERY_REQUEST.to_be_bytes());
    p[2..4].copy_from_slice(&DISCOVERY_BODY_LEN.to_be_bytes());
    p[4..8].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// Parses a discovery response for our SSRC; `None` for anything else.
pub fn parse_discovery_response(p: &[u8], ssrc: u32) -> Option<Discovered> {
    if p.len() != DISCOVERY_LEN
        || p[0..2] != DISCOVERY_RESPONSE.to_be_bytes()
        || p[2..4] != DISCOVERY_BODY_LEN.to_be_bytes()
        || p[4..8] != ssrc.to_be_bytes()
    {
        return None;
    }
    let raw = &p[8..72];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let address = std::str::from_utf8(&raw[..end]).ok()?;
    address.parse::<Ipv4Addr>().ok()?;
    Some(Discovered {
        address: address.to_owned(),
        port: u16::from_be_bytes([p[72], p[73]]),
    })
}

/// Opens a socket towards the media server and runs IP discovery (retrying on loss).
///
/// Returns the socket, switched to non-blocking for the engine's sends.
pub async fn discover(
    server: SocketAddr,
    ssrc: u32,
) -> Result<(UdpSocket, Discovered), DiscoveryError> {
    const TRIES: u32 = 5;
    let bind: SocketAddr = match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => "[::]:0".parse().expect("valid literal"),
    };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    let request = discovery_request(ssrc);
    let mut buf = [0u8; 1500];
    for attempt in 0..TRIES {
        socket.send(&request).await?;
        let wait = Duration::from_millis(500 * u64::from(attempt + 1));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    if let Some(found) = parse_discovery_response(&buf[..n], ssrc) {
                        let std = socket.into_std()?;
                        std.set_nonblocking(true)?;
                        return Ok((std, found));
                    }
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
    }
    Err(DiscoveryError::NoAnswer(server, TRIES))
}

/// The 4-byte keepalive songbird sends (our SSRC); keeps NAT mappings open while idle.
pub fn keepalive(ssrc: u32) -> [u8; 4] {
    ssrc.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_74_bytes_with_type_length_and_ssrc() {
        let r = discovery_request(0x0102_0304);
        assert_eq!(r.len(), 74);
        assert_eq!(&r[..8], &[0, 1, 0, 70, 1, 2, 3, 4]);
        assert!(r[8..].iter().all(|&b| b == 0));
    }

    #[test]
    fn response_parses_address_to_the_first_nul_and_port_big_endian() {
        let mut p = [0u8; 74];
        p[0..4].copy_from_slice(&[0, 2, 0, 70]);
        p[4..8].copy_from_slice(&9u32.to_be_bytes());
        p[8..8 + 11].copy_from_slice(b"203.0.113.5");
        p[72..74].copy_from_slice(&50123u16.to_be_bytes());
        let d = parse_discovery_response(&p, 9).unwrap();
        assert_eq!(
            d,
            Discovered {
                address: "203.0.113.5".into(),
                port: 50123
            }
        );
        assert!(parse_discovery_response(&p, 10).is_none(), "other SSRC");
        assert!(parse_discovery_response(&p[..73], 9).is_none(), "short");
        p[8] = b'x';
        assert!(
            parse_discovery_response(&p, 9).is_none(),
            "not an IPv4 address"
        );
    }
}
