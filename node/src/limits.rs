//! Admission limits enforced before a connection costs anything: a global connection cap,
//! concurrent connections per IP, and the handshake rate per IP (governor).
//!
//! Per-user caps are enforced cluster-wide inside the registry (`OpenSession` carries the
//! cap); per-connection message rates live in the connection actor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Why a connection was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("node connection limit reached")]
    NodeFull,
    #[error("too many connections from this address")]
    PerIp,
    #[error("handshake rate exceeded for this address")]
    HandshakeRate,
}

impl LimitError {
    pub fn reason(self) -> &'static str {
        match self {
            LimitError::NodeFull => "node_full",
            LimitError::PerIp => "per_ip",
            LimitError::HandshakeRate => "handshake_rate",
        }
    }
}

pub struct Limits {
    max_connections: usize,
    max_per_ip: u32,
    handshakes: DefaultKeyedRateLimiter<IpAddr>,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, u32>,
}

/// Holds one connection slot; releasing it on drop makes leaks impossible on any exit path.
pub struct ConnSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut g = self.limits.state.lock().unwrap_or_else(|p| p.into_inner());
        g.total = g.total.saturating_sub(1);
        if let Some(n) = g.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    pub fn new(max_connections: usize, max_per_ip: u32, handshakes_per_ip_per_sec: u32) -> Self {
        let rate = NonZeroU32::new(handshakes_per_ip_per_sec).unwrap_or(NonZeroU32::MIN);
        Limits {
            max_connections,
            max_per_ip,
            handshakes: RateLimiter::keyed(Quota::per_second(rate)),
            state: Mutex::default(),
        }
    }

    /// Takes a slot for a new TCP connection from `ip`, or says which limit refused it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, LimitError> {
        if self.handshakes.check_key(&ip).is_err() {
            return Err(LimitError::HandshakeRate);
        }
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if g.total >= self.max_connections {
            return Err(LimitError::NodeFull);
        }
        let n = g.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                g.per_ip.remove(&ip);
            }
            return Err(LimitError::PerIp);
        }
        *n += 1;
        g.total += 1;
        Ok(ConnSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Forgets rate-limiter state of idle addresses so the keyed map stays bounded.
    pub fn gc(&self) {
        self.handshakes.retain_recent();
        self.handshakes.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-IP cap refuses the next connection and a dropped slot frees it.
    #[test]
    fn per_ip_cap_and_release() {
        let l = Arc::new(Limits::new(100, 2, 1000));
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let a = l.admit(ip).unwrap();
        let _b = l.admit(ip).unwrap();
        assert_eq!(l.admit(ip).err(), Some(LimitError::PerIp));
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        assert!(l.admit(other).is_ok());
        drop(a);
        assert!(l.admit(ip).is_ok());
    }

    /// The node-wide cap and the handshake rate are enforced.
    #[test]
    fn node_cap_and_rate() {
        let l = Arc::new(Limits::new(1, 10, 1000));
        let _a = l.admit("127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            l.admit("127.0.0.2".parse().unwrap()).err(),
            Some(LimitError::NodeFull)
        );
        let r = Arc::new(Limits::new(100, 100, 2));
        let ip: IpAddr = "127.0.0.3".parse().unwrap();
        let mut refused = 0;
        let mut held = Vec::new();
        for _ in 0..10 {
            match r.admit(ip) {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert_eq!(e, LimitError::HandshakeRate);
                    refused += 1
                }
            }
        }
        assert!(refused >= 7, "refused {refused}");
    }
}
