//! Admission limits enforced before a connection costs anything: a global connection cap,
//! open connections and sockets still before their upgrade per client address, and the
//! handshake rate per client address (governor).
//!
//! A client address is the limit key of [`crate::net::limit_key`] (IPv6 by prefix). A socket
//! whose client is not known at accept (PROXY protocol, trusted proxy) is first counted in the
//! node total only ([`Limits::reserve`]) and charged to its client once that is read
//! ([`ConnSlot::attribute`]).
//!
//! Per-user caps are enforced cluster-wide inside the registry (`OpenSession` carries the
//! cap); per-connection message rates live in the connection actor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::net::limit_key;

/// Why a connection was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("node connection limit reached")]
    NodeFull,
    #[error("too many connections from this address")]
    PerIp,
    #[error("handshake rate exceeded for this address")]
    HandshakeRate,
    #[error("too many unfinished upgrades from this address")]
    PendingUpgrades,
}

impl LimitError {
    pub const ALL: [LimitError; 4] = [
        LimitError::NodeFull,
        LimitError::PerIp,
        LimitError::HandshakeRate,
        LimitError::PendingUpgrades,
    ];

    /// The `reason` label of `tether_connections_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            LimitError::NodeFull => "node_full",
            LimitError::PerIp => "per_ip",
            LimitError::HandshakeRate => "handshake_rate",
            LimitError::PendingUpgrades => "pending_upgrades",
        }
    }
}

/// The `[limits]` values enforced here.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub max_connections: usize,
    pub max_per_ip: u32,
    pub max_pending_per_ip: u32,
    pub handshakes_per_ip_per_sec: u32,
    pub ipv6_prefix_len: u8,
}

pub struct Limits {
    settings: LimitSettings,
    handshakes: DefaultKeyedRateLimiter<IpAddr>,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, PerIp>,
}

#[derive(Default)]
struct PerIp {
    open: u32,
    /// Of `open`, the sockets whose HTTP upgrade has not completed.
    pending: u32,
}

/// Holds one connection slot; releasing it on drop makes leaks impossible on any exit path.
pub struct ConnSlot {
    limits: Arc<Limits>,
    /// The client address key this slot is charged to; `None` while a proxied socket has
    /// not named its client yet (or never does).
    key: Option<IpAddr>,
    pending: bool,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut g = self.limits.lock();
        g.total = g.total.saturating_sub(1);
        if let Some(key) = self.key {
            g.release(key, self.pending);
        }
    }
}

impl Counts {
    fn release(&mut self, key: IpAddr, pending: bool) {
        if let Some(n) = self.per_ip.get_mut(&key) {
            n.open = n.open.saturating_sub(1);
            if pending {
                n.pending = n.pending.saturating_sub(1);
            }
            if n.open == 0 {
                self.per_ip.remove(&key);
            }
        }
    }
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Self {
        let rate = NonZeroU32::new(settings.handshakes_per_ip_per_sec).unwrap_or(NonZeroU32::MIN);
        Limits {
            settings,
            handshakes: RateLimiter::keyed(Quota::per_second(rate)),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a new socket from client `ip` (pending until [`ConnSlot::upgraded`]),
    /// or says which limit refused it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, LimitError> {
        let mut slot = self.reserve()?;
        slot.attribute(ip, true)?;
        Ok(slot)
    }

    /// Takes a slot counted in the node total only: a socket whose client is not known yet
    /// (a PROXY protocol header or a trusted proxy's forwarded headers will name it).
    pub fn reserve(self: &Arc<Self>) -> Result<ConnSlot, LimitError> {
        let mut g = self.lock();
        if g.total >= self.settings.max_connections {
            return Err(LimitError::NodeFull);
        }
        g.total += 1;
        Ok(ConnSlot {
            limits: self.clone(),
            key: None,
            pending: false,
        })
    }

    /// Forgets rate-limiter state of idle addresses so the keyed map stays bounded.
    pub fn gc(&self) {
        self.handshakes.retain_recent();
        self.handshakes.shrink_to_fit();
    }
}

impl ConnSlot {
    /// Charges the slot to client `ip`: the handshake rate and the per-IP caps (`pending`: the
    /// socket has not sent its upgrade request yet). A slot is charged once; later calls are
    /// no-ops.
    pub fn attribute(&mut self, ip: IpAddr, pending: bool) -> Result<(), LimitError> {
        if self.key.is_some() {
            return Ok(());
        }
        let limits = self.limits.clone();
        let key = limit_key(ip, limits.settings.ipv6_prefix_len);
        if limits.handshakes.check_key(&key).is_err() {
            return Err(LimitError::HandshakeRate);
        }
        let mut g = limits.lock();
        let n = g.per_ip.entry(key).or_default();
        let refused = if n.open >= limits.settings.max_per_ip {
            Some(LimitError::PerIp)
        } else if pending && n.pending >= limits.settings.max_pending_per_ip {
            Some(LimitError::PendingUpgrades)
        } else {
            None
        };
        if let Some(e) = refused {
            if n.open == 0 {
                g.per_ip.remove(&key);
            }
            return Err(e);
        }
        n.open += 1;
        n.pending += u32::from(pending);
        self.key = Some(key);
        self.pending = pending;
        Ok(())
    }

    /// The HTTP upgrade is done: the socket stops counting against the pending cap.
    pub fn upgraded(&mut self) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        if let Some(key) = self.key
            && let Some(n) = self.limits.lock().per_ip.get_mut(&key)
        {
            n.pending = n.pending.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: u32, pending: u32, rate: u32) -> Arc<Limits> {
        Arc::new(Limits::new(LimitSettings {
            max_connections: max,
            max_per_ip: per_ip,
            max_pending_per_ip: pending,
            handshakes_per_ip_per_sec: rate,
            ipv6_prefix_len: 64,
        }))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The per-IP cap refuses the next connection and a dropped slot frees it.
    #[test]
    fn per_ip_cap_and_release() {
        let l = limits(100, 2, 10, 1000);
        let a = l.admit(ip("127.0.0.9")).unwrap();
        let _b = l.admit(ip("127.0.0.9")).unwrap();
        assert_eq!(l.admit(ip("127.0.0.9")).err(), Some(LimitError::PerIp));
        assert!(l.admit(ip("127.0.0.10")).is_ok());
        drop(a);
        assert!(l.admit(ip("127.0.0.9")).is_ok());
    }

    /// Sockets before their upgrade have their own, smaller cap; an upgraded one frees it.
    #[test]
    fn pending_cap_and_upgrade() {
        let l = limits(100, 10, 2, 1000);
        let mut a = l.admit(ip("127.0.0.9")).unwrap();
        let _b = l.admit(ip("127.0.0.9")).unwrap();
        assert_eq!(
            l.admit(ip("127.0.0.9")).err(),
            Some(LimitError::PendingUpgrades)
        );
        a.upgraded();
        a.upgraded(); // idempotent
        let _c = l.admit(ip("127.0.0.9")).unwrap();
        assert_eq!(
            l.admit(ip("127.0.0.9")).err(),
            Some(LimitError::PendingUpgrades)
        );
        drop(a);
        assert_eq!(
            l.admit(ip("127.0.0.9")).err(),
            Some(LimitError::PendingUpgrades),
            "dropping an upgraded slot frees no pending room"
        );
    }

    /// The node-wide cap and the handshake rate are enforced.
    #[test]
    fn node_cap_and_rate() {
        let l = limits(1, 10, 10, 1000);
        let _a = l.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(l.admit(ip("127.0.0.2")).err(), Some(LimitError::NodeFull));
        assert_eq!(l.reserve().err(), Some(LimitError::NodeFull));
        let r = limits(100, 100, 100, 2);
        let mut refused = 0;
        let mut held = Vec::new();
        for _ in 0..10 {
            match r.admit(ip("127.0.0.3")) {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert_eq!(e, LimitError::HandshakeRate);
                    refused += 1
                }
            }
        }
        assert!(refused >= 7, "refused {refused}");
    }

    /// A reserved socket counts in the node total, then against the client it names.
    #[test]
    fn reserved_slots_are_charged_to_the_client() {
        let l = limits(3, 1, 1, 1000);
        let mut a = l.reserve().unwrap();
        a.attribute(ip("203.0.113.5"), false).unwrap();
        let mut b = l.reserve().unwrap();
        assert_eq!(
            b.attribute(ip("203.0.113.5"), false),
            Err(LimitError::PerIp)
        );
        b.attribute(ip("203.0.113.6"), true).unwrap();
        let mut c = l.reserve().unwrap();
        assert_eq!(l.reserve().err(), Some(LimitError::NodeFull));
        assert_eq!(c.attribute(ip("203.0.113.6"), true), Err(LimitError::PerIp));
        drop((a, c));
        let mut d = l.reserve().unwrap();
        d.attribute(ip("203.0.113.5"), false).unwrap();
    }

    /// IPv6 clients of one /64 share a budget; another /64 has its own.
    #[test]
    fn ipv6_by_prefix() {
        let l = limits(100, 2, 10, 1000);
        let _a = l.admit(ip("2001:db8:0:1::1")).unwrap();
        let _b = l.admit(ip("2001:db8:0:1::2")).unwrap();
        assert_eq!(
            l.admit(ip("2001:db8:0:1::3")).err(),
            Some(LimitError::PerIp)
        );
        assert!(l.admit(ip("2001:db8:0:2::1")).is_ok());
    }
}
