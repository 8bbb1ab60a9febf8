//! The TLS side of the front door: the server configuration built from the operator's PEM files.
//!
//! Invariants:
//! - The crypto provider is chosen here (ring), never left to a process-wide default, so a binary that
//!   links several rustls providers still builds the same configuration.
//! - Errors name the file and what was wrong with it; they never contain key material.
//! - ALPN offers HTTP/2 and HTTP/1.1, like the plain listener's automatic protocol choice.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

/// The certificate chain and private key a TLS listener serves, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (expected PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("{path} is not valid PEM: {reason}")]
    BadPem { path: String, reason: String },
    #[error("the private key does not go with the certificate, or is of an unsupported kind: {0}")]
    Mismatch(String),
}

/// The crypto provider of every TLS configuration hoard builds: the one node-to-node TLS uses.
pub use hoard_actors::peer_tls::provider;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

/// Every certificate in a PEM file, in order (leaf first, as a chain file has them).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem { path: path.display().to_string(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.display().to_string() });
    }
    Ok(certs)
}

/// Builds the server configuration from `files`: refused, with the reason, if either file is unusable.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key_pem = zeroize::Zeroizing::new(read(&files.key)?);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: files.key.display().to_string() },
        // The error's text describes the PEM structure, never the key's bytes.
        other => TlsError::BadPem { path: files.key.display().to_string(), reason: other.to_string() },
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_refused_with_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let files = TlsFiles { cert: cert.clone(), key: key.clone() };
        let err = server_config(&files).unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");

        std::fs::write(&cert, "not a certificate\n").unwrap();
        let err = server_config(&files).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
