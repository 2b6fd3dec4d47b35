//! The open-file limit: every client socket is a file descriptor, so a node whose soft
//! `RLIMIT_NOFILE` is the common default of 1024 runs out long before `max_connections`.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors the node needs besides client sockets: the Raft log and snapshot files,
/// peer links, the admin listener's connections, JWKS fetches, sockets being refused.
const RESERVED_FDS: u64 = 512;

/// The open-file limit before and after raising it. `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft_before: Option<u64>,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raises the soft open-file limit to the hard limit (no privilege needed for that) and
/// reports both. A failure leaves the limit as it was; `soft` then says so.
pub fn raise_nofile_limit() -> FdLimit {
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: before.maximum,
                maximum: before.maximum,
            },
        );
    }
    let after = getrlimit(Resource::Nofile);
    FdLimit {
        soft_before: before.current,
        soft: after.current,
        hard: after.maximum,
    }
}

/// The hard open-file limit now (`None`: unlimited).
pub fn nofile_hard_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).maximum
}

/// How many client sockets fit under `limit` (the hard limit: the node raises its soft limit
/// to it at startup), or `None` when unlimited.
pub fn sockets_that_fit(limit: Option<u64>) -> Option<u64> {
    limit.map(|l| l.saturating_sub(RESERVED_FDS))
}

/// A warning when `limits.max_connections` cannot fit under the hard open-file limit `hard`:
/// the node would hit EMFILE before its own cap, refusing clients without saying why.
pub fn capacity_warning(max_connections: u32, hard: Option<u64>) -> Option<String> {
    let fit = sockets_that_fit(hard)?;
    (u64::from(max_connections) > fit).then(|| {
        format!(
            "limits.max_connections = {max_connections} cannot fit in the open-file limit \
             (hard {}): about {fit} client sockets fit; raise the hard limit (ulimit -Hn, \
             systemd LimitNOFILE=, the container runtime's nofile) or lower \
             limits.max_connections",
            hard.unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raising never lowers the limit, and afterwards soft equals hard.
    #[test]
    fn raises_soft_to_hard() {
        let l = raise_nofile_limit();
        assert_eq!(l.soft, l.hard);
        assert!(l.soft >= l.soft_before || l.soft.is_none());
        assert_eq!(sockets_that_fit(Some(1024)), Some(512));
        assert_eq!(sockets_that_fit(Some(100)), Some(0));
        assert_eq!(sockets_that_fit(None), None);
    }

    /// A cap above what the descriptors allow is warned about, naming both numbers.
    #[test]
    fn warns_when_the_cap_cannot_fit() {
        let w = capacity_warning(100_000, Some(20_000)).expect("a warning");
        assert!(w.contains("100000") && w.contains("hard 20000"), "{w}");
        assert_eq!(capacity_warning(1000, Some(20_000)), None);
        assert_eq!(capacity_warning(100_000, None), None);
    }
}
