//! The PROXY protocol header (HAProxy's v1 text and v2 binary forms) that TCP load
//! balancers put in front of a connection to say whose it is.
//!
//! The header is read exactly, never a byte more, so the TLS handshake or HTTP request that
//! follows is left on the socket untouched. v1 is read a byte at a time (at most 107 bytes);
//! v2 by its length field (bounded).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// v1's longest line, CRLF included (the spec's bound).
const V1_MAX: usize = 107;
/// Longest v2 address block we accept (addresses plus TLVs such as the TLS or AWS ones).
const V2_MAX_LEN: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("no PROXY protocol header within the timeout")]
    Timeout,
    #[error("connection closed before the PROXY protocol header")]
    Closed,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
}

/// Reads the header within `timeout`. `Ok(Some(addr))`: the client's address;
/// `Ok(None)`: a v2 `LOCAL` or v1 `UNKNOWN` header (a health check by the balancer itself),
/// so the socket's own peer stands.
pub async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    tokio::time::timeout(timeout, read(stream))
        .await
        .map_err(|_| ProxyError::Timeout)?
}

async fn read<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<SocketAddr>, ProxyError> {
    let mut start = [0u8; 12];
    read_exact(s, &mut start).await?;
    if start == V2_SIGNATURE {
        return read_v2(s).await;
    }
    if !start.starts_with(b"PROXY ") {
        return Err(ProxyError::Malformed("no PROXY signature"));
    }
    let mut line = start.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyError::Malformed("v1 line too long"));
        }
        let mut b = [0u8; 1];
        read_exact(s, &mut b).await?;
        line.push(b[0]);
    }
    parse_v1(&line[..line.len() - 2])
}

fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyError::Malformed("v1 not ASCII"))?;
    let parts: Vec<&str> = text.split(' ').collect();
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        [
            "PROXY",
            family @ ("TCP4" | "TCP6"),
            src,
            _dst,
            sport,
            _dport,
        ] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| ProxyError::Malformed("v1 source address"))?;
            if ip.is_ipv4() != (*family == "TCP4") {
                return Err(ProxyError::Malformed("v1 address family"));
            }
            let port = sport
                .parse::<u16>()
                .map_err(|_| ProxyError::Malformed("v1 source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(ProxyError::Malformed("v1 fields")),
    }
}

async fn read_v2<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<SocketAddr>, ProxyError> {
    let mut head = [0u8; 4];
    read_exact(s, &mut head).await?;
    let [ver_cmd, family, hi, lo] = head;
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version"));
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > V2_MAX_LEN {
        return Err(ProxyError::Malformed("v2 header too long"));
    }
    let mut body = vec![0u8; len];
    read_exact(s, &mut body).await?;
    match ver_cmd & 0x0f {
        0 => return Ok(None), // LOCAL: the balancer's own connection
        1 => {}
        _ => return Err(ProxyError::Malformed("v2 command")),
    }
    let short = ProxyError::Malformed("v2 address block too short");
    match family >> 4 {
        1 => {
            let b: [u8; 12] = body
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([b[8], b[9]]),
            )))
        }
        2 => {
            let b: [u8; 36] = body
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[..16]);
            let port = u16::from_be_bytes([b[32], b[33]]);
            Ok(Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port)))
        }
        // AF_UNSPEC (or AF_UNIX): no usable address, the socket's peer stands.
        _ => Ok(None),
    }
}

async fn read_exact<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Result<(), ProxyError> {
    s.read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut s = bytes;
        let r = read_proxy_header(&mut s, Duration::from_secs(1)).await;
        (r, s.to_vec())
    }

    fn v2(cmd: u8, family: u8, addrs: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.extend([0x20 | cmd, family]);
        b.extend((addrs.len() as u16).to_be_bytes());
        b.extend(addrs);
        b
    }

    /// v1 TCP4/TCP6/UNKNOWN parse, and the bytes after the header are left unread.
    #[tokio::test]
    async fn v1_forms() {
        let (r, rest) = parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 7070\r\nGET /").await;
        assert_eq!(r, Ok(Some("203.0.113.7:51000".parse().unwrap())));
        assert_eq!(rest, b"GET /");
        let (r, _) = parse(b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 443\r\n").await;
        assert_eq!(r, Ok(Some("[2001:db8::5]:4000".parse().unwrap())));
        let (r, rest) = parse(b"PROXY UNKNOWN\r\n\x16\x03").await;
        assert_eq!((r, rest), (Ok(None), b"\x16\x03".to_vec()));
    }

    /// v2 PROXY over IPv4 and IPv6 (with a TLV), LOCAL, and the rest left unread.
    #[tokio::test]
    async fn v2_forms() {
        let mut a4 = vec![198, 51, 100, 9, 10, 0, 0, 1];
        a4.extend(40000u16.to_be_bytes());
        a4.extend(7070u16.to_be_bytes());
        a4.extend([0x04, 0x00, 0x01, 0xAA]); // a NOOP TLV
        let mut bytes = v2(1, 0x11, &a4);
        bytes.extend(b"\x16\x03\x01");
        let (r, rest) = parse(&bytes).await;
        assert_eq!(r, Ok(Some("198.51.100.9:40000".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01");
        let mut a6 = "2001:db8::42"
            .parse::<Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        a6.extend([0u8; 16]);
        a6.extend(1234u16.to_be_bytes());
        a6.extend(443u16.to_be_bytes());
        let (r, _) = parse(&v2(1, 0x21, &a6)).await;
        assert_eq!(r, Ok(Some("[2001:db8::42]:1234".parse().unwrap())));
        let (r, rest) = parse(&[v2(0, 0x00, &[]), b"GET".to_vec()].concat()).await;
        assert_eq!((r, rest), (Ok(None), b"GET".to_vec()));
    }

    /// Junk, truncation, oversize and silence are errors, never a panic or a hang.
    #[tokio::test]
    async fn malformed_and_silent() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
        ] {
            assert!(
                matches!(parse(bad).await.0, Err(ProxyError::Malformed(_))),
                "{bad:?}"
            );
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(
            parse(&long).await.0,
            Err(ProxyError::Malformed("v1 line too long"))
        );
        assert_eq!(
            parse(&v2(1, 0x11, &[1, 2, 3])).await.0,
            Err(ProxyError::Malformed("v2 address block too short"))
        );
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            parse(&huge).await.0,
            Err(ProxyError::Malformed("v2 header too long"))
        );
        assert_eq!(parse(b"PROXY TCP4 1.2").await.0, Err(ProxyError::Closed));
        let (_client, mut server) = tokio::io::duplex(64);
        let silent = read_proxy_header(&mut server, Duration::from_millis(50)).await;
        assert_eq!(silent, Err(ProxyError::Timeout));
    }
}
