//! Dev PKI for local clusters (`tether certs`): a cluster CA and node certificates, ECDSA
//! P-256, made with rcgen. Production clusters bring their own CA; the transport only needs
//! PEM files.
//!
//! Validity is rcgen's default (1975 to 4096): these certificates are for development, and a
//! dev cluster silently breaking a year later helps nobody.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::string::{Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    SanType,
};

use crate::NodeId;
use crate::transport::identity::node_uri;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("CA certificate: {0}")]
    BadCa(String),
    #[error("node name {0:?} cannot be used as a file name")]
    BadNodeName(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A self-signed cluster CA. Returns `(cert_pem, key_pem)`.
pub fn generate_ca(common_name: &str) -> Result<(String, String), CertError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    let cert = ca_params(name).self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// One node certificate to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCert {
    /// Common name, and the file name stem (`<name>.pem`).
    pub name: String,
    /// The node id the certificate binds (SAN URI `urn:tether:node:<id>`); `None` only for
    /// certificates that are not a node's (or for peers told to accept them, see
    /// `TransportConfig::allow_missing_node_id`).
    pub id: Option<NodeId>,
    /// The IPs and DNS names peers dial it by, e.g. `127.0.0.1`, `tether-0.tether-peers`.
    pub sans: Vec<String>,
}

/// A node certificate signed by the CA, usable both as TLS server and client certificate
/// (every peer connection is mutual TLS). Returns `(cert_pem, key_pem)`.
pub fn generate_node_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node: &NodeCert,
) -> Result<(String, String), CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(ca_subject(ca_cert_pem)?), ca_key);

    let mut params = CertificateParams::new(node.sans.clone())?;
    if let Some(id) = node.id {
        let uri = Ia5String::try_from(node_uri(id))?;
        params.subject_alt_names.push(SanType::URI(uri));
    }
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, node.name.as_str());
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Where the CA that signed a run's node certificates came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaSource {
    /// `ca.pem` and `ca-key.pem` were already in the directory: nodes added later join the
    /// same cluster.
    Reused,
    Created,
}

/// Writes one certificate per node into `dir` (`<name>.pem`, `<name>-key.pem`), signed by the CA already there (`ca.pem`, `ca-key.pem`), or by a new
/// one when there is none or `new_ca`. Keys are created with mode 0600. Half a CA (one
/// file of the two) is an error, not a reason to replace it.
pub fn write_dev_pki(dir: &Path, nodes: &[NodeCert], new_ca: bool) -> Result<CaSource, CertError> {
    for NodeCert { name, .. } in nodes {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !plain {
            return Err(CertError::BadNodeName(name.clone()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CertError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let (ca_cert, ca_key, source) = match (cert_path.exists(), key_path.exists(), new_ca) {
        (true, true, false) => (read(&cert_path)?, read(&key_path)?, CaSource::Reused),
        (false, false, _) | (_, _, true) => {
            let (cert, key) = generate_ca("Tether dev cluster CA")?;
            write_file(&cert_path, &cert, false)?;
            write_file(&key_path, &key, true)?;
            (cert, key, CaSource::Created)
        }
        (true, false, false) | (false, true, false) => {
            return Err(CertError::BadCa(format!(
                "{} has only one of ca.pem and ca-key.pem; restore the other, or make a new CA",
                dir.display()
            )));
        }
    };
    for node in nodes {
        let (cert, key) = generate_node_cert(&ca_cert, &ca_key, node)?;
        write_file(&dir.join(format!("{}.pem", node.name)), &cert, false)?;
        write_file(&dir.join(format!("{}-key.pem", node.name)), &key, true)?;
    }
    Ok(source)
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // `mode` only applies to a new file; an existing one may have looser permissions.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn ca_params(name: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The subject of a CA certificate, rebuilt as an rcgen name. A node certificate's issuer
/// must equal its CA's subject byte for byte, and rcgen can only read a certificate with
/// its `x509-parser` feature, which this crate does not enable; so this walks the few DER
/// fields in front of the subject by hand.
fn ca_subject(ca_cert_pem: &str) -> Result<DistinguishedName, CertError> {
    let bad = |what: &str| CertError::BadCa(what.to_string());
    let der = rustls_pemfile::certs(&mut ca_cert_pem.as_bytes())
        .next()
        .ok_or_else(|| bad("no PEM certificate"))?
        .map_err(|e| CertError::BadCa(e.to_string()))?;
    let (cert, _) = expect(0x30, der.as_ref())?;
    let (tbs, _) = expect(0x30, cert)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xA0) {
        rest = expect(0xA0, rest)?.1; // explicit version
    }
    rest = expect(0x02, rest)?.1; // serial number
    rest = expect(0x30, rest)?.1; // signature algorithm
    rest = expect(0x30, rest)?.1; // issuer
    rest = expect(0x30, rest)?.1; // validity
    let (mut rdns, _) = expect(0x30, rest)?; // subject

    let mut name = DistinguishedName::new();
    while !rdns.is_empty() {
        let (rdn, after) = expect(0x31, rdns)?;
        rdns = after;
        let (attribute, extra) = expect(0x30, rdn)?;
        if !extra.is_empty() {
            return Err(bad("multi-valued RDNs are not supported"));
        }
        let (oid, value) = expect(0x06, attribute)?;
        let (tag, text, _) = tlv(value)?;
        let text = String::from_utf8(text.to_vec()).map_err(|_| bad("subject is not UTF-8"))?;
        let value = match tag {
            0x0C => DnValue::Utf8String(text),
            0x13 => DnValue::PrintableString(
                PrintableString::try_from(text).map_err(|e| CertError::BadCa(e.to_string()))?,
            ),
            _ => return Err(bad("subject uses a string type other than UTF8/Printable")),
        };
        name.push(DnType::from_oid(&oid_arcs(oid)?), value);
    }
    Ok(name)
}

/// Splits one DER element off `input`: `(tag, contents, rest)`.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), CertError> {
    let truncated = || CertError::BadCa("truncated DER".into());
    let (&tag, input) = input.split_first().ok_or_else(truncated)?;
    let (&first, mut input) = input.split_first().ok_or_else(truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || input.len() < count {
            return Err(truncated());
        }
        let (bytes, after) = input.split_at(count);
        input = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    if input.len() < len {
        return Err(truncated());
    }
    let (contents, rest) = input.split_at(len);
    Ok((tag, contents, rest))
}

fn expect(tag: u8, input: &[u8]) -> Result<(&[u8], &[u8]), CertError> {
    match tlv(input)? {
        (found, contents, rest) if found == tag => Ok((contents, rest)),
        (found, _, _) => Err(CertError::BadCa(format!(
            "expected DER tag {tag:#04x}, found {found:#04x}"
        ))),
    }
}

fn oid_arcs(oid: &[u8]) -> Result<Vec<u64>, CertError> {
    let (&first, rest) = oid
        .split_first()
        .ok_or_else(|| CertError::BadCa("empty OID".into()))?;
    let mut arcs = vec![u64::from(first / 40), u64::from(first % 40)];
    let mut arc = 0u64;
    for &byte in rest {
        arc = (arc << 7) | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            arcs.push(arc);
            arc = 0;
        }
    }
    Ok(arcs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CA subject read back from PEM is the one the CA was made with, so node
    /// certificates name it exactly as their issuer.
    #[test]
    fn ca_subject_round_trips() -> Result<(), CertError> {
        let (ca, _) = generate_ca("Test CA")?;
        let subject = ca_subject(&ca)?;
        assert_eq!(
            subject.get(&DnType::CommonName),
            Some(&DnValue::Utf8String("Test CA".into()))
        );
        Ok(())
    }

    /// Node names that would escape the directory are refused before anything is written.
    #[test]
    fn odd_node_names_are_refused() {
        let dir = Path::new("/nonexistent-never-created");
        for name in ["../x", "a/b", "", ".hidden"] {
            let nodes = [NodeCert {
                name: name.to_string(),
                id: None,
                sans: vec![],
            }];
            assert!(matches!(
                write_dev_pki(dir, &nodes, false),
                Err(CertError::BadNodeName(_))
            ));
        }
    }

    /// Garbage instead of a CA is an error, not a panic.
    #[test]
    fn garbage_ca_is_an_error() {
        assert!(ca_subject("not pem").is_err());
        assert!(tlv(&[0x30, 0x82, 0xFF]).is_err());
    }
}
