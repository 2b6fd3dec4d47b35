//! The client address behind a trusted load balancer, from `X-Forwarded-For` or `Forwarded`
//! (RFC 7239).
//!
//! Each proxy appends the address it received the request from, so the list reads
//! client-first, and everything left of the nearest untrusted hop may be forged by that
//! client. The client is therefore the rightmost address that is not a trusted proxy.
//! `X-Forwarded-For` wins when both are present: it is what most load balancers append to,
//! while a `Forwarded` header sent by the client often passes through them untouched.

use std::net::IpAddr;

use http::HeaderMap;

use super::TrustedProxies;

/// Headers longer than this are not parsed (they come from the client, through the proxy).
const MAX_HEADER_BYTES: usize = 4096;

/// The client address of a request that arrived from a trusted proxy, or `None` when the
/// headers name none (or only unparsable or obfuscated hops): the caller then keeps the
/// proxy's own address.
pub fn forwarded_client(headers: &HeaderMap, trusted: &TrustedProxies) -> Option<IpAddr> {
    let xff = header_list(headers, "x-forwarded-for");
    let hops: Vec<&str> = if !xff.is_empty() {
        xff.iter().flat_map(|v| v.split(',')).collect()
    } else {
        header_list(headers, "forwarded")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| for_param(element).unwrap_or(""))
            .collect()
    };
    let mut client = None;
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop)?;
        client = Some(ip);
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

fn header_list<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter(|v| v.len() <= MAX_HEADER_BYTES)
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The `for=` parameter of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn for_param(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`, optionally quoted.
/// Obfuscated identifiers (`unknown`, `_hidden`) are not addresses.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap()
    }

    fn client(pairs: &[(&str, &str)]) -> Option<String> {
        forwarded_client(&headers(pairs), &trusted()).map(|ip| ip.to_string())
    }

    /// The rightmost untrusted hop is the client; forged hops to its left are ignored.
    #[test]
    fn rightmost_untrusted_hop() {
        let c = client(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(c.as_deref(), Some("203.0.113.9"));
        // Several header lines are one list.
        let c = client(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.4:5555, 10.1.1.1"),
        ]);
        assert_eq!(c.as_deref(), Some("198.51.100.4"));
        // Only proxies: the leftmost of them.
        assert_eq!(
            client(&[("x-forwarded-for", "10.0.0.9, 10.0.0.2")]).as_deref(),
            Some("10.0.0.9")
        );
    }

    /// `Forwarded` is read when there is no `X-Forwarded-For`, with quoting and IPv6 ports.
    #[test]
    fn forwarded_header() {
        let c = client(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.3"#,
        )]);
        assert_eq!(c.as_deref(), Some("2001:db8:cafe::17"));
        let both = client(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        assert_eq!(both.as_deref(), Some("192.0.2.1"));
    }

    /// No header, junk or an obfuscated hop before the client is found: no client address.
    #[test]
    fn nothing_usable() {
        assert_eq!(client(&[]), None);
        assert_eq!(client(&[("x-forwarded-for", "garbage")]), None);
        assert_eq!(client(&[("forwarded", "for=unknown")]), None);
        assert_eq!(client(&[("forwarded", "proto=https")]), None);
        // A junk hop right of the client: the chain is broken there, nothing is believed.
        assert_eq!(client(&[("x-forwarded-for", "192.0.2.1, junk")]), None);
    }
}
