//! `Config::validate`: cross-field and range checks that serde's types cannot express.
//! The first problem found is returned, naming its dotted key.

use std::fmt::Display;
use std::net::Ipv6Addr;
use std::path::PathBuf;

use super::keys::validate_keys;
use super::{AuditSinkKind, Config, ConfigError};

/// Largest accepted `limits.max_frame_bytes`.
const MAX_FRAME_CEILING: usize = 16 * 1024 * 1024;

impl Config {
    /// Checks every section; see the field docs for the rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_node()?;
        self.check_listen()?;
        self.check_cluster_and_tls()?;
        self.check_auth()?;
        self.check_limits()?;
        positive(
            "session.resume_window_secs",
            self.session.resume_window_secs,
        )?;
        positive(
            "session.expire_interval_secs",
            self.session.expire_interval_secs,
        )?;
        positive(
            "session.outbox_max_messages",
            self.session.outbox_max_messages as u64,
        )?;
        positive(
            "session.outbox_max_bytes",
            self.session.outbox_max_bytes as u64,
        )?;
        if let Some(n) = self.session.max_detached_per_user {
            positive("session.max_detached_per_user", u64::from(n))?;
        }
        positive("raft.snapshot_every", self.raft.snapshot_every)?;
        validate_keys("admin.keys", &self.admin.keys)?;
        positive(
            "admin.max_connections",
            u64::from(self.admin.max_connections),
        )?;
        self.check_audit()?;
        for (i, tenant) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            tenant.validate(&at, self.auth.allow_http_jwks)?;
            if self.tenants[..i].iter().any(|t| t.id == tenant.id) {
                return Err(ConfigError::new(
                    format!("{at}.id"),
                    format!("duplicate tenant id `{}`", tenant.id),
                ));
            }
        }
        Ok(())
    }

    fn check_audit(&self) -> Result<(), ConfigError> {
        let a = &self.audit;
        if a.sink == AuditSinkKind::File && a.path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "audit.path",
                "required with sink = \"file\"",
            ));
        }
        if a.max_bytes < 4096 {
            return Err(ConfigError::new("audit.max_bytes", "must be at least 4096"));
        }
        in_range("audit.max_files", a.max_files, 1, 100)
    }

    fn check_node(&self) -> Result<(), ConfigError> {
        positive("node.id", self.node.id)?;
        non_empty("node.region", &self.node.region)?;
        if self.node.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("node.data_dir", "must not be empty"));
        }
        Ok(())
    }

    fn check_listen(&self) -> Result<(), ConfigError> {
        let listeners = [
            ("listen.client", &self.listen.client),
            ("listen.admin", &self.listen.admin),
            ("listen.peer", &self.listen.peer),
        ];
        for (i, (key, addr)) in listeners.iter().enumerate() {
            let port = check_host_port(addr).map_err(|m| ConfigError::new(*key, m))?;
            // Port 0 (any free port, used by tests) may repeat; a fixed address may not,
            // or the second bind fails with a far less helpful message.
            if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| a == addr)
                && port != 0
            {
                return Err(ConfigError::new(
                    *key,
                    format!("`{addr}` is already used by {other}"),
                ));
            }
        }
        for (i, cidr) in self.listen.trusted_proxies.iter().enumerate() {
            crate::net::Cidr::parse(cidr)
                .map_err(|m| ConfigError::new(format!("listen.trusted_proxies[{i}]"), m))?;
        }
        Ok(())
    }

    fn check_cluster_and_tls(&self) -> Result<(), ConfigError> {
        if let Some(a) = &self.cluster.advertise {
            check_host_port(a).map_err(|m| ConfigError::new("cluster.advertise", m))?;
        }
        if let Some(ip) = &self.cluster.peer_source_addr
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ConfigError::new(
                "cluster.peer_source_addr",
                format!("`{ip}` is not an IP address"),
            ));
        }
        for (key, v) in [
            (
                "cluster.isolation_lease_ms",
                self.cluster.isolation_lease_ms,
            ),
            (
                "cluster.isolation_grace_ms",
                self.cluster.isolation_grace_ms,
            ),
        ] {
            if let Some(v) = v
                && !(100..=600_000).contains(&v)
            {
                return Err(ConfigError::new(key, "must be between 100 and 600000 ms"));
            }
        }
        if let Some(v) = self.cluster.peer_protocol_max {
            use tether_cluster::transport::wire::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
            if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&v) {
                return Err(ConfigError::new(
                    "cluster.peer_protocol_max",
                    format!(
                        "this build speaks peer protocols {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}"
                    ),
                ));
            }
        }
        for (i, addr) in self.cluster.join.iter().enumerate() {
            check_host_port(addr).map_err(|m| ConfigError::new(format!("cluster.join[{i}]"), m))?;
        }
        let tls = &self.tls;
        let client = [
            ("tls.client_cert", &tls.client_cert),
            ("tls.client_key", &tls.client_key),
        ];
        all_or_none(&client)?;
        let admin = [
            ("tls.admin_cert", &tls.admin_cert),
            ("tls.admin_key", &tls.admin_key),
        ];
        if !all_or_none(&admin)? && tls.admin_client_ca.is_some() {
            return Err(ConfigError::new(
                "tls.admin_client_ca",
                "client certificates need TLS on the admin listener: set tls.admin_cert and \
                 tls.admin_key too",
            ));
        }
        let peer = [
            ("tls.peer_ca", &tls.peer_ca),
            ("tls.peer_cert", &tls.peer_cert),
            ("tls.peer_key", &tls.peer_key),
        ];
        let peer_tls = all_or_none(&peer)?;
        if peer_tls && self.cluster.insecure_peer {
            return Err(ConfigError::new(
                "cluster.insecure_peer",
                "is true while tls.peer_* is set; choose one",
            ));
        }
        // A single bootstrapping node has no peers yet, so it needs no peer TLS.
        if !self.cluster.join.is_empty() && !peer_tls && !self.cluster.insecure_peer {
            return Err(ConfigError::new(
                "tls.peer_ca",
                "joining a cluster needs tls.peer_ca, tls.peer_cert and tls.peer_key \
                 (or cluster.insecure_peer = true for dev/test)",
            ));
        }
        Ok(())
    }

    fn check_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        in_range("auth.leeway_secs", auth.leeway_secs, 0, 300)?;
        non_empty("auth.tenant_claim", &auth.tenant_claim)?;
        positive("auth.refresh_window_secs", auth.refresh_window_secs)?;
        in_range("auth.max_token_bytes", auth.max_token_bytes, 512, 65536)?;
        in_range(
            "auth.admin_max_token_lifetime_secs",
            auth.admin_max_token_lifetime_secs,
            60,
            31_536_000,
        )
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let all = [
            ("auth_timeout_secs", l.auth_timeout_secs),
            ("idle_timeout_secs", l.idle_timeout_secs),
            ("heartbeat_interval_secs", l.heartbeat_interval_secs),
            ("max_frame_bytes", l.max_frame_bytes as u64),
            ("max_connections", u64::from(l.max_connections)),
            (
                "max_connections_per_ip",
                u64::from(l.max_connections_per_ip),
            ),
            (
                "max_connections_per_user",
                u64::from(l.max_connections_per_user),
            ),
            (
                "handshakes_per_ip_per_sec",
                u64::from(l.handshakes_per_ip_per_sec),
            ),
            (
                "messages_per_conn_per_sec",
                u64::from(l.messages_per_conn_per_sec),
            ),
            ("max_protocol_errors", u64::from(l.max_protocol_errors)),
            ("outbound_queue", l.outbound_queue as u64),
            ("upgrade_timeout_secs", l.upgrade_timeout_secs),
            (
                "max_subscriptions_per_conn",
                u64::from(l.max_subscriptions_per_conn),
            ),
            ("rate_limit_strikes", u64::from(l.rate_limit_strikes)),
            (
                "max_pending_upgrades_per_ip",
                u64::from(l.max_pending_upgrades_per_ip),
            ),
        ];
        for (name, value) in all {
            positive(&format!("limits.{name}"), value)?;
        }
        if l.heartbeat_interval_secs >= l.idle_timeout_secs {
            return Err(ConfigError::new(
                "limits.heartbeat_interval_secs",
                format!(
                    "must be less than limits.idle_timeout_secs ({}), or idle clients are cut off",
                    l.idle_timeout_secs
                ),
            ));
        }
        in_range("limits.ipv6_prefix_len", l.ipv6_prefix_len, 1, 128)?;
        in_range(
            "limits.max_frame_bytes",
            l.max_frame_bytes,
            1024,
            MAX_FRAME_CEILING,
        )
    }
}

/// `host:port` or `[ipv6]:port`; returns the port.
fn check_host_port(addr: &str) -> Result<u16, String> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("`{addr}` must be [ipv6]:port"))?;
        ip.parse::<Ipv6Addr>()
            .map_err(|_| format!("`{ip}` in `{addr}` is not an IPv6 address"))?;
        (ip, port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("`{addr}` must be host:port"))?;
        if host.contains(':') {
            return Err(format!(
                "`{addr}`: write an IPv6 host in brackets, [::1]:7070"
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!("`{addr}` has no host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("`{port}` in `{addr}` is not a port number (0-65535)"))
}

/// `Some` for all of `paths` or none; returns whether they are all set. Empty paths are
/// refused (an empty env override would otherwise read as "set").
fn all_or_none(paths: &[(&str, &Option<PathBuf>)]) -> Result<bool, ConfigError> {
    if let Some((key, _)) = paths
        .iter()
        .find(|(_, p)| p.as_ref().is_some_and(|p| p.as_os_str().is_empty()))
    {
        return Err(ConfigError::new(*key, "must not be empty"));
    }
    let set = paths.iter().filter(|(_, p)| p.is_some()).count();
    if set == 0 || set == paths.len() {
        return Ok(set > 0);
    }
    let names: Vec<&str> = paths.iter().map(|(k, _)| *k).collect();
    let missing = paths
        .iter()
        .find(|(_, p)| p.is_none())
        .map_or("tls", |(k, _)| *k);
    Err(ConfigError::new(
        missing,
        format!("{} must be set together", names.join(", ")),
    ))
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key, "must be greater than 0"));
    }
    Ok(())
}

fn in_range<T: PartialOrd + Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            key,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

fn non_empty(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    Ok(())
}
