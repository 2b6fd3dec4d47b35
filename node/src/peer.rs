//! The peer transport settings of this node, from `[tls] peer_*` and `[cluster]`.

use std::sync::Arc;

use anyhow::Context;
use tether_cluster::transport::{PeerTls, TransportConfig};

use crate::config::Config;

/// The transport config, and whether the peer listener may be served at all: with mutual
/// TLS, or plaintext only when `insecure_peer = true` (logged loudly). Without either the node
/// runs alone and refuses to talk to peers rather than silently speaking plaintext.
pub fn transport_config(config: &Config) -> anyhow::Result<(Arc<TransportConfig>, bool)> {
    let mut t = TransportConfig::new(config.node.id, None);
    // Validated as an IP address by the config.
    t.source_addr = config
        .cluster
        .peer_source_addr
        .as_deref()
        .and_then(|ip| ip.parse().ok());
    let tls = &config.tls;
    t.allow_missing_node_id = tls.peer_allow_missing_node_id;
    if let Some(pinned) = config.cluster.peer_protocol_max {
        tracing::warn!(
            protocol = pinned,
            "peer protocol pinned by cluster.peer_protocol_max: this node speaks as an older \
             build would"
        );
        t.max_protocol = pinned;
    }
    match tls.peer_files(config.node.id) {
        Some((ca, cert, key)) => {
            t.tls =
                Some(PeerTls::from_pem_files(&ca, &cert, &key).context("peer TLS (tls.peer_*)")?);
            Ok((Arc::new(t), true))
        }
        _ if config.cluster.insecure_peer => {
            tracing::warn!(
                "INSECURE: peer links are PLAINTEXT (cluster.insecure_peer = true); \
                 anyone who can reach the peer port can join and rewrite the registry. \
                 Use tls.peer_ca/peer_cert/peer_key outside dev and tests."
            );
            Ok((Arc::new(t), true))
        }
        _ => Ok((Arc::new(t), false)),
    }
}
