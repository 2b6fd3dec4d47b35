//! A peer's node id bound to its certificate: every node certificate names its node id as a
//! SAN URI `urn:tether:node:<id>`, and the id a peer claims in its hello must be that one.
//! Without this any holder of a certificate from the cluster CA could speak as any node
//! (vote as it, take its sessions' handovers).

use std::sync::atomic::Ordering;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::TransportConfig;
use crate::NodeId;

/// What a node certificate's SAN URI starts with; the node id in decimal follows.
pub const NODE_URI_PREFIX: &str = "urn:tether:node:";

/// The SAN URI naming node `id`.
pub fn node_uri(id: NodeId) -> String {
    format!("{NODE_URI_PREFIX}{id}")
}

/// The node id the certificate names: `None` when it has no `urn:tether:node:` URI, an error
/// when it cannot be parsed or names more than one id.
pub fn cert_node_id(der: &[u8]) -> Result<Option<NodeId>, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subject alternative names: {e}"))?;
    let mut found = None;
    for name in sans.iter().flat_map(|ext| ext.value.general_names.iter()) {
        let GeneralName::URI(uri) = name else {
            continue;
        };
        let Some(id) = uri.strip_prefix(NODE_URI_PREFIX) else {
            continue;
        };
        let id: NodeId = id
            .parse()
            .map_err(|_| format!("certificate names a malformed node id {uri:?}"))?;
        if found.is_some_and(|f| f != id) {
            return Err("certificate names more than one node id".into());
        }
        found = Some(id);
    }
    Ok(found)
}

/// The end-entity certificate the other side of a TLS session presented, if any.
pub(super) fn presented(session: &rustls::CommonState) -> Option<CertificateDer<'static>> {
    session.peer_certificates()?.first().cloned()
}

/// Checks the node id a peer claimed in its hello against the certificate it presented over
/// TLS. A refusal is counted in `cfg.identity_refusals` and says why. A certificate naming
/// no id passes only with `cfg.allow_missing_node_id` (the migration from older
/// certificates), and then every such connection is logged as a warning.
pub(super) fn check(
    cfg: &TransportConfig,
    cert: Option<&CertificateDer<'_>>,
    claimed: NodeId,
) -> Result<(), String> {
    let refuse = |why: String| {
        cfg.identity_refusals.fetch_add(1, Ordering::Relaxed);
        Err(why)
    };
    let Some(cert) = cert else {
        return refuse(format!("node {claimed} presented no certificate"));
    };
    match cert_node_id(cert) {
        Ok(Some(id)) if id == claimed => Ok(()),
        Ok(Some(id)) => refuse(format!(
            "peer claims to be node {claimed} but its certificate is node {id}'s"
        )),
        Ok(None) if cfg.allow_missing_node_id => {
            tracing::warn!(
                node = claimed,
                "ACCEPTING A PEER CERTIFICATE WITHOUT A NODE ID (tls.peer_allow_missing_node_id \
                 = true): any holder of a cluster certificate can claim to be node {claimed}; \
                 reissue certificates with urn:tether:node:<id> and turn the flag off"
            );
            Ok(())
        }
        Ok(None) => refuse(format!(
            "node {claimed}'s certificate names no node id (SAN URI {NODE_URI_PREFIX}<id>)"
        )),
        Err(e) => refuse(format!("node {claimed}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{NodeCert, generate_ca, generate_node_cert};

    fn der(id: Option<NodeId>) -> CertificateDer<'static> {
        let (ca, ca_key) = generate_ca("t").expect("ca");
        let node = NodeCert {
            name: "n".into(),
            id,
            sans: vec!["127.0.0.1".into()],
        };
        let (pem, _) = generate_node_cert(&ca, &ca_key, &node).expect("cert");
        let certs = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<Vec<_>, _>>();
        certs.expect("pem").remove(0)
    }

    /// The id written into a certificate is read back; a certificate without one has none;
    /// garbage is an error.
    #[test]
    fn ids_round_trip_through_certificates() {
        assert_eq!(cert_node_id(&der(Some(7))), Ok(Some(7)));
        assert_eq!(cert_node_id(&der(None)), Ok(None));
        assert!(cert_node_id(b"junk").is_err());
    }

    /// A claim matching the certificate passes; another id, or no id without the migration
    /// flag, is refused and counted.
    #[test]
    fn claims_must_match_the_certificate() {
        let mut cfg = TransportConfig::new(1, None);
        let (seven, none) = (der(Some(7)), der(None));
        assert!(check(&cfg, Some(&seven), 7).is_ok());
        let wrong = check(&cfg, Some(&seven), 8);
        assert!(wrong.is_err_and(|e| e.contains("node 7's")));
        assert!(check(&cfg, Some(&none), 7).is_err());
        assert!(check(&cfg, None, 7).is_err());
        assert_eq!(cfg.identity_refusals.load(Ordering::Relaxed), 3);
        cfg.allow_missing_node_id = true;
        assert!(check(&cfg, Some(&none), 7).is_ok());
        assert!(check(&cfg, Some(&seven), 8).is_err());
    }
}
