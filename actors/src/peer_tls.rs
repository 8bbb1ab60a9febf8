//! The cluster's certificate authority and the mutual TLS of node-to-node connections.
//!
//! Invariants:
//! - Every node-to-node connection is mutual TLS under the cluster CA: a server asks every client for a
//!   certificate and refuses one the CA did not sign (or none); a client refuses a server the CA did not
//!   sign. Nothing is exchanged before both sides are verified.
//! - The CA's certificate is derived from the cluster id and its key alone (subject, key usages, key id
//!   method), so a node holding the CA key can sign again after a restart without parsing its own
//!   certificate.
//! - A node certificate names the node as `node-<id>.<cluster>.hoard` (the name clients verify) and carries
//!   the address it is reached at.
//! - Private keys are zeroized when dropped and never appear in `Debug` output or errors.
//! - The crypto provider is ring, chosen here and never left to a process-wide default.

use std::sync::Arc;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rcgen::SanType;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::pki_types::ServerName;
use zeroize::Zeroizing;

/// Why a certificate could not be made or a TLS configuration built.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

type Result<T> = std::result::Result<T, PeerTlsError>;

fn cert_err(e: impl std::fmt::Display) -> PeerTlsError {
    PeerTlsError::Certificate(e.to_string())
}

fn config_err(e: impl std::fmt::Display) -> PeerTlsError {
    PeerTlsError::Config(e.to_string())
}

/// The crypto provider of every peer TLS configuration.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The name a node's certificate carries and its peers verify.
pub fn node_name(cluster_id: &str, node_id: u64) -> String {
    format!("node-{node_id}.{cluster_id}.hoard")
}

/// The cluster's certificate authority: its certificate (public) and key (secret, kept by the nodes that
/// sign joins).
pub struct ClusterCa {
    cluster_id: String,
    cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").field("cluster_id", &self.cluster_id).finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new CA for cluster `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<ClusterCa> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = Self::params(cluster_id)?.self_signed(&key).map_err(cert_err)?;
        Ok(ClusterCa { cluster_id: cluster_id.to_string(), cert_pem: cert.pem(), key })
    }

    /// The CA of `cluster_id` from its stored certificate and key.
    pub fn load(cluster_id: &str, cert_pem: &str, key_pem: &str) -> Result<ClusterCa> {
        let key = KeyPair::from_pem(key_pem).map_err(|_| cert_err("the CA key is not a PEM private key"))?;
        Ok(ClusterCa { cluster_id: cluster_id.to_string(), cert_pem: cert_pem.to_string(), key })
    }

    fn params(cluster_id: &str) -> Result<CertificateParams> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.distinguished_name.push(DnType::CommonName, format!("hoard cluster {cluster_id} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(params)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key as PEM, to store (owner-only) beside the certificate.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    /// A certificate and key for node `node_id`, reached at `host` (an IP address or a DNS name). The key is
    /// made here: for the node that holds the CA (the first one).
    pub fn issue(&self, node_id: u64, host: &str) -> Result<NodeIdentity> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(vec![node_name(&self.cluster_id, node_id)]).map_err(cert_err)?;
        params.subject_alt_names.push(match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.to_string().try_into().map_err(cert_err)?),
        });
        params.distinguished_name.push(DnType::CommonName, node_name(&self.cluster_id, node_id));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = Issuer::new(Self::params(&self.cluster_id)?, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
        Ok(NodeIdentity { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) })
    }
}

/// A node's certificate and private key, as PEM.
pub struct NodeIdentity {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity").finish_non_exhaustive()
    }
}

impl NodeIdentity {
    fn chain(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| config_err(format!("node certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|_| config_err("node key: not a PEM private key"))?;
        Ok((certs, key))
    }
}

fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| config_err(format!("CA certificate: {e}")))?).map_err(config_err)?;
    }
    if roots.is_empty() {
        return Err(config_err("no CA certificate"));
    }
    Ok(Arc::new(roots))
}

/// The server side of node-to-node connections: presents `identity`, and accepts only clients with a
/// certificate the CA `ca_pem` signed.
pub fn server_config(ca_pem: &str, identity: &NodeIdentity) -> Result<Arc<rustls::ServerConfig>> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(config_err)?;
    let (certs, key) = identity.chain()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(config_err)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The client side: presents `identity`, and trusts only servers the CA `ca_pem` signed.
pub fn client_config(ca_pem: &str, identity: &NodeIdentity) -> Result<Arc<rustls::ClientConfig>> {
    let (certs, key) = identity.chain()?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs, key)
        .map_err(config_err)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS server name under which node `node_id` of `cluster_id` is verified.
pub fn server_name(cluster_id: &str, node_id: u64) -> Result<ServerName<'static>> {
    ServerName::try_from(node_name(cluster_id, node_id)).map_err(config_err)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;
    use tokio::net::TcpStream;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::TlsConnector;

    use super::*;

    const CLUSTER: &str = "c0ffee";

    /// One connection from `client` to a server with `server`, the client verifying the name of node
    /// `expect`; what each side saw: whether the server read the client's byte, whether the client read
    /// the server's answer.
    async fn exchange(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        expect: u64,
    ) -> (bool, bool) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = TlsAcceptor::from(server).accept(socket).await else { return false };
            let mut byte = [0u8; 1];
            if tls.read_exact(&mut byte).await.is_err() {
                return false;
            }
            tls.write_all(b"k").await.is_ok() && tls.flush().await.is_ok()
        });
        let socket = TcpStream::connect(addr).await.unwrap();
        let name = server_name(CLUSTER, expect).unwrap();
        let answered = async {
            let mut tls = TlsConnector::from(client).connect(name, socket).await.ok()?;
            tls.write_all(b"?").await.ok()?;
            tls.flush().await.ok()?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.ok()?;
            Some(byte == *b"k")
        }
        .await
        .unwrap_or(false);
        (served.await.unwrap(), answered)
    }

    #[tokio::test]
    async fn members_talk_and_strangers_are_refused_at_the_handshake() {
        let ca = ClusterCa::generate(CLUSTER).unwrap();
        let one = ca.issue(1, "10.0.0.1").unwrap();
        let two = ca.issue(2, "node2.example").unwrap();
        let server = server_config(ca.cert_pem(), &one).unwrap();
        let member = client_config(ca.cert_pem(), &two).unwrap();
        assert_eq!(exchange(server.clone(), member.clone(), 1).await, (true, true), "two members talk");

        // A client whose certificate another CA signed, and one with no certificate at all.
        let rogue_ca = ClusterCa::generate(CLUSTER).unwrap();
        let rogue = client_config(ca.cert_pem(), &rogue_ca.issue(3, "10.0.0.3").unwrap()).unwrap();
        assert_eq!(exchange(server.clone(), rogue, 1).await, (false, false), "a rogue CA's node is refused");
        let anonymous = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots(ca.cert_pem()).unwrap())
                .with_no_client_auth(),
        );
        assert_eq!(exchange(server.clone(), anonymous, 1).await, (false, false), "no certificate is refused");

        // A server the cluster CA did not sign, and a member answering to another node's name.
        let impostor = server_config(rogue_ca.cert_pem(), &rogue_ca.issue(1, "10.0.0.1").unwrap()).unwrap();
        assert_eq!(exchange(impostor, member.clone(), 1).await, (false, false), "a rogue server is refused");
        assert_eq!(exchange(server, member, 2).await, (false, false), "node 1 cannot pass for node 2");
    }

    #[tokio::test]
    async fn a_stored_ca_signs_again_and_keys_stay_out_of_debug_output() {
        let ca = ClusterCa::generate(CLUSTER).unwrap();
        let key_pem = ca.key_pem();
        let again = ClusterCa::load(CLUSTER, ca.cert_pem(), &key_pem).unwrap();
        // A node the reloaded CA signed talks to one the original signed: the same authority.
        let server = server_config(ca.cert_pem(), &ca.issue(1, "10.0.0.1").unwrap()).unwrap();
        let client = client_config(ca.cert_pem(), &again.issue(4, "10.0.0.4").unwrap()).unwrap();
        assert_eq!(exchange(server, client, 1).await, (true, true));
        let printed = format!("{ca:?} {again:?} {:?}", again.issue(5, "10.0.0.5").unwrap());
        assert!(!printed.contains("PRIVATE KEY") && !printed.contains(&key_pem[40..80]), "{printed}");
        assert!(ClusterCa::load(CLUSTER, ca.cert_pem(), "not a key").is_err());
    }
}
