//! Mutual TLS between peers: every node presents a certificate signed by the cluster CA and
//! accepts only peers that do the same. The configs can be rebuilt from their files while
//! the node runs (certificate rotation); each new handshake takes the current ones.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::TransportError;

/// The server and client TLS configurations of one node, built from the same material.
/// Clones share them, so a [`PeerTls::reload`] reaches every clone.
#[derive(Clone)]
pub struct PeerTls {
    current: Arc<RwLock<Configs>>,
    /// `(ca, cert, key)` when built from files: what `reload` reads again.
    files: Option<Arc<(PathBuf, PathBuf, PathBuf)>>,
}

#[derive(Clone)]
struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configs hold the private key: never print them.
        f.write_str("PeerTls { .. }")
    }
}

impl PeerTls {
    /// Reads the cluster CA bundle, this node's certificate chain and its private key.
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, TransportError> {
        let files = (ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf());
        Ok(PeerTls {
            current: Arc::new(RwLock::new(read_configs(&files)?)),
            files: Some(Arc::new(files)),
        })
    }

    /// Builds both configurations from PEM bytes: the server requires a client certificate
    /// signed by `ca`, the client verifies the server against `ca` and presents `cert`.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<PeerTls, TransportError> {
        Ok(PeerTls {
            current: Arc::new(RwLock::new(configs(ca, cert, key)?)),
            files: None,
        })
    }

    /// The files `reload` reads (`ca`, `cert`, `key`), if built from files.
    pub fn files(&self) -> Option<[&Path; 3]> {
        self.files
            .as_deref()
            .map(|(ca, cert, key)| [ca.as_path(), cert.as_path(), key.as_path()])
    }

    /// Reads the files again and swaps the new configs in for new handshakes; connections
    /// already up keep theirs. On error the previous configs stay.
    pub fn reload(&self) -> Result<(), TransportError> {
        let Some(files) = &self.files else {
            return Err(TransportError::Tls(
                "built from memory: nothing to reload".into(),
            ));
        };
        let fresh = read_configs(files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    pub(super) fn server(&self) -> Arc<ServerConfig> {
        self.now().server
    }

    pub(super) fn client(&self) -> Arc<ClientConfig> {
        self.now().client
    }

    fn now(&self) -> Configs {
        // A poisoned lock still holds complete configs: the writer only ever assigns.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn read_configs((ca, cert, key): &(PathBuf, PathBuf, PathBuf)) -> Result<Configs, TransportError> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| TransportError::Tls(format!("reading {}: {e}", path.display())))
    };
    configs(&read(ca)?, &read(cert)?, &read(key)?)
}

fn configs(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Configs, TransportError> {
    {
        let roots = Arc::new(parse_roots(ca)?);
        let chain = parse_certs(cert, "node certificate")?;
        let key = parse_key(key)?;
        // An explicit provider, not the process default: other crates in the binary (reqwest
        // for JWKS) may enable a second rustls backend, and then `builder()` would panic for
        // want of a single default.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TransportError::Tls(format!("client verifier: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TransportError::Tls(format!("node certificate/key: {e}")))?;
        let client = client_config(provider, roots, chain, key)?;
        Ok(Configs {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

fn client_config(
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, TransportError> {
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TransportError::Tls(format!("node certificate/key: {e}")))
}

fn tls_err(e: rustls::Error) -> TransportError {
    TransportError::Tls(e.to_string())
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::Tls(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(TransportError::Tls(format!("{what}: no PEM certificate")));
    }
    Ok(certs)
}

fn parse_roots(pem: &[u8]) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(pem, "cluster CA")? {
        roots
            .add(cert)
            .map_err(|e| TransportError::Tls(format!("cluster CA: {e}")))?;
    }
    Ok(roots)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TransportError> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| TransportError::Tls(format!("node key: {e}")))?
        .ok_or_else(|| TransportError::Tls("node key: no PEM private key".into()))
}

/// The name the client expects in the server's certificate: the host part of `host:port`
/// (an IP address or a DNS name; `[v6]:port` brackets removed). Node certificates must carry
/// it as a subject alternative name.
pub(super) fn server_name(peer_addr: &str) -> Result<ServerName<'static>, TransportError> {
    let host = match peer_addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => {
            return Err(TransportError::Unreachable(format!(
                "peer address {peer_addr:?} is not host:port"
            )));
        }
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        TransportError::Unreachable(format!("peer address {peer_addr:?}: bad host: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPs, DNS names and bracketed IPv6 hosts become the expected server names.
    #[test]
    fn server_names_from_addresses() {
        let name = |a: &str| server_name(a).map(|n| n.to_str().into_owned());
        assert_eq!(name("127.0.0.1:7000").ok().as_deref(), Some("127.0.0.1"));
        assert_eq!(
            name("tether-0.tether-peers:7000").ok().as_deref(),
            Some("tether-0.tether-peers")
        );
        assert_eq!(name("[::1]:7000").ok().as_deref(), Some("::1"));
        assert!(name("no-port").is_err());
        assert!(name("host:notaport").is_err());
    }

    /// Garbage PEM is a `Tls` error, not a panic.
    #[test]
    fn garbage_pem_is_an_error() {
        assert!(matches!(
            PeerTls::from_pem(b"nope", b"nope", b"nope"),
            Err(TransportError::Tls(_))
        ));
    }
}
