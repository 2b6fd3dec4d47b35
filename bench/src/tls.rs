//! TLS for the `wss` variants: a self-signed certificate for 127.0.0.1 made with rcgen, and
//! a client config that trusts only it (full handshakes: resumption is off, so every
//! connect pays the whole TLS 1.3 handshake, the storm's worst case).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::CertificateDer;

/// Paths of the server certificate and key (PEM).
#[derive(Clone, Debug)]
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `wss-cert.pem` and `wss-key.pem` (P-256, SAN 127.0.0.1 and localhost) into `dir`.
pub fn make_server_cert(dir: &Path) -> anyhow::Result<ServerCert> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .context("generating the wss certificate")?;
    let cert = dir.join("wss-cert.pem");
    let key = dir.join("wss-key.pem");
    std::fs::write(&cert, ck.cert.pem())?;
    std::fs::write(&key, ck.signing_key.serialize_pem())?;
    Ok(ServerCert { cert, key })
}

/// A client config trusting exactly the certificate at `cert_pem`.
pub fn client_config(cert_pem: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(cert_pem).with_context(|| format!("reading {}", cert_pem.display()))?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pem.as_slice()).collect::<Result<_, _>>()?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}
