//! TLS of the client (`wss`) and admin listeners, and reloading every certificate the node
//! holds (these two and the peer transport's) when its files change or on SIGHUP.
//!
//! - this file: `ServerTls`, a listener's rustls config that can be swapped while serving;
//! - `reload.rs`: the watcher that notices changed files and swaps the configs.

pub mod reload;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The PEM files a listener's TLS is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients may present a certificate signed by this CA; whether the
    /// listener insists on one is its own business (see `admin::listener`).
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsFiles {
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.cert.clone(), self.key.clone()];
        paths.extend(self.client_ca.clone());
        paths
    }
}

/// A listener's TLS: each accepted connection takes the acceptor current at that moment, so
/// a reload changes what new handshakes see and leaves established connections alone.
pub struct ServerTls {
    files: ServerTlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl ServerTls {
    pub fn load(files: ServerTlsFiles) -> anyhow::Result<ServerTls> {
        let acceptor = build(&files)?;
        Ok(ServerTls {
            files,
            current: RwLock::new(acceptor),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        // A poisoned lock still holds a complete acceptor: the writer only ever assigns.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether clients can authenticate with a certificate (`client_ca` is set).
    pub fn verifies_clients(&self) -> bool {
        self.files.client_ca.is_some()
    }

    pub fn files(&self) -> &ServerTlsFiles {
        &self.files
    }

    /// Reads the files again; on error the previous config stays in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let acceptor = build(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
        Ok(())
    }
}

fn build(files: &ServerTlsFiles) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("CA certificate in {}", ca.display()))?;
            }
            // Anonymous clients still complete the handshake (probes carry no certificate);
            // a certificate that is presented must verify.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .with_context(|| format!("client CA {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .with_context(|| {
            format!(
                "certificate {} with key {}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("parsing private key in {}", path.display()))?
        .with_context(|| format!("no private key in {}", path.display()))
}

/// The node's own listeners' TLS, from `[tls]`.
pub struct ListenerTls {
    pub client: Option<Arc<ServerTls>>,
    pub admin: Option<Arc<ServerTls>>,
}

impl ListenerTls {
    pub fn load(tls: &crate::config::TlsSection) -> anyhow::Result<ListenerTls> {
        let client = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => Some(ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: None,
            }),
            _ => None,
        };
        let admin = match (&tls.admin_cert, &tls.admin_key) {
            (Some(cert), Some(key)) => Some(ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: tls.admin_client_ca.clone(),
            }),
            _ => None,
        };
        let load = |files: Option<ServerTlsFiles>, what: &str| {
            files
                .map(|f| ServerTls::load(f).map(Arc::new).context(what.to_owned()))
                .transpose()
        };
        Ok(ListenerTls {
            client: load(client, "client TLS (tls.client_*)")?,
            admin: load(admin, "admin TLS (tls.admin_*)")?,
        })
    }

    /// What the reload watcher keeps fresh: these listeners and the peer transport's TLS.
    pub fn reloadables(
        &self,
        peer: Option<&tether_cluster::transport::PeerTls>,
    ) -> Vec<reload::Reloadable> {
        let mut items = Vec::new();
        for (listener, tls) in [("client", &self.client), ("admin", &self.admin)] {
            if let Some(tls) = tls.clone() {
                items.push(reload::Reloadable {
                    listener,
                    files: tls.files().paths(),
                    reload: Box::new(move || tls.reload().map_err(|e| format!("{e:#}"))),
                });
            }
        }
        if let Some(peer) = peer.cloned()
            && let Some(files) = peer.files()
        {
            items.push(reload::Reloadable {
                listener: "peer",
                files: files.iter().map(|p| p.to_path_buf()).collect(),
                reload: Box::new(move || peer.reload().map_err(|e| e.to_string())),
            });
        }
        items
    }
}
