//! CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a bare address) and the per-IP limit key.

use std::net::IpAddr;

/// One address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/len` or a bare address (a /32 or /128). Host bits must be zero, so a
    /// typo such as `10.0.0.1/8` is refused rather than silently widened.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0..={max}"))?,
        };
        if mask(net, prefix) != net {
            return Err(format!(
                "`{text}` has host bits set; write {}/{prefix}",
                mask(net, prefix)
            ));
        }
        Ok(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

/// `listen.trusted_proxies`: the load balancers whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses validated config entries; an invalid one (impossible after validation) is an
    /// error rather than silently trusting less or more.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| Cidr::parse(e))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// The key per-IP limits count by: the IPv4 address, or the IPv6 address cut to
/// `v6_prefix` bits (a single host usually owns a whole /64, so counting single IPv6
/// addresses would let one host open millions of "different" clients).
pub fn limit_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match unmap(ip) {
        v4 @ IpAddr::V4(_) => v4,
        v6 => mask(v6, v6_prefix.min(128)),
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, from a dual-stack listener) is IPv4.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Blocks and bare addresses parse; bad lengths, host bits and junk are refused.
    #[test]
    fn parse_and_contains() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "mapped IPv4");
        assert!(!c.contains(ip("2001:db8::1")));
        let one = Cidr::parse("127.0.0.5").unwrap();
        assert!(one.contains(ip("127.0.0.5")) && !one.contains(ip("127.0.0.6")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "proxy",
            "10.0.0.0/x",
            "::/129",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    /// IPv6 clients share a key per prefix; IPv4 (also mapped) keeps the full address.
    #[test]
    fn limit_keys() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1"), 64),
            limit_key(ip("2001:db8:1:2:bbbb::9"), 64)
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1"), 64),
            limit_key(ip("2001:db8:1:3::1"), 64)
        );
        assert_eq!(limit_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(limit_key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
    }
}
