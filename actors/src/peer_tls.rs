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
        let issuer = Issuer::new(Self::params(&self.cluster_id)?, &self.key);
        let cert = node_params(&self.cluster_id, node_id, host)?.signed_by(&key, &issuer).map_err(cert_err)?;
        Ok(NodeIdentity { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) })
    }

    /// Signs a joining node's certificate signing request (whose signature proves it holds the key) as node
    /// `node_id` at `host`. Only the CSR's public key is taken: names, usages and validity are hoard's.
    pub fn sign_csr(&self, node_id: u64, host: &str, csr_pem: &str) -> Result<String> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|_| cert_err("the certificate signing request does not parse or its signature is wrong"))?;
        csr.params = node_params(&self.cluster_id, node_id, host)?;
        let issuer = Issuer::new(Self::params(&self.cluster_id)?, &self.key);
        Ok(csr.signed_by(&issuer).map_err(cert_err)?.pem())
    }
}

/// The certificate of node `node_id` reached at `host`: named `node-<id>.<cluster>.hoard` (what members
/// verify) and `<cluster>.hoard` (what a joiner verifies: it does not know which node answers), for both
/// server and client authentication.
fn node_params(cluster_id: &str, node_id: u64, host: &str) -> Result<CertificateParams> {
    let names = vec![node_name(cluster_id, node_id), cluster_name(cluster_id)];
    let mut params = CertificateParams::new(names).map_err(cert_err)?;
    params.subject_alt_names.push(match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(host.to_string().try_into().map_err(cert_err)?),
    });
    params.distinguished_name.push(DnType::CommonName, node_name(cluster_id, node_id));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// The name every member's certificate carries besides its own.
pub fn cluster_name(cluster_id: &str) -> String {
    format!("{cluster_id}.hoard")
}

/// A joining node's new key and a certificate signing request for it: the key stays with the joiner.
pub fn make_csr() -> Result<(String, Zeroizing<String>)> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let csr =
        CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?.serialize_request(&key).map_err(cert_err)?;
    Ok((csr.pem().map_err(cert_err)?, Zeroizing::new(key.serialize_pem())))
}

/// The SHA-256 of the first certificate in `pem` (the CA fingerprint a join token pins).
pub fn fingerprint(pem: &str) -> Result<[u8; 32]> {
    use sha2::Digest as _;
    let cert = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| cert_err("no certificate"))?
        .map_err(|e| cert_err(format!("certificate: {e}")))?;
    Ok(sha2::Sha256::digest(cert.as_ref()).into())
}

/// The node id a member certificate of `cluster_id` names, if any.
pub fn cert_node_id(cluster_id: &str, der: &[u8]) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    let suffix = format!(".{cluster_id}.hoard");
    names.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::DNSName(dns) => {
            dns.strip_prefix("node-")?.strip_suffix(suffix.as_str())?.parse().ok()
        }
        _ => None,
    })
}

/// The nodes removed from the cluster: their certificates are refused at the handshake. The set only grows.
#[derive(Debug)]
pub struct RevokedNodes {
    nodes: std::sync::RwLock<std::collections::BTreeSet<u64>>,
    /// Bumped each time a node is added, so the peer server can cut connections made before.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for RevokedNodes {
    fn default() -> Self {
        RevokedNodes { nodes: Default::default(), changed: tokio::sync::watch::Sender::new(0) }
    }
}

impl RevokedNodes {
    pub fn contains(&self, node: u64) -> bool {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).contains(&node)
    }

    /// Adds every node of `removed`; tells the watchers when one was new.
    pub fn extend(&self, removed: impl IntoIterator<Item = u64>) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let before = nodes.len();
        nodes.extend(removed);
        if nodes.len() != before {
            drop(nodes);
            self.changed.send_modify(|n| *n += 1);
        }
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
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

/// The ALPN protocol of a joining node's connection (the only one served without a client certificate).
pub const JOIN_ALPN: &[u8] = b"hoard-join/1";

/// The server side of node-to-node connections: presents `identity`, and accepts only clients with a
/// certificate the CA `ca_pem` signed for a node of `cluster_id` that is not in `revoked`.
pub fn server_config(
    cluster_id: &str,
    ca_pem: &str,
    identity: &NodeIdentity,
    revoked: Arc<RevokedNodes>,
) -> Result<Arc<rustls::ServerConfig>> {
    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(config_err)?;
    let verifier = Arc::new(MemberVerifier { inner, cluster_id: cluster_id.to_string(), revoked });
    let (certs, key) = identity.chain()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(config_err)?;
    // No session resumption: a resumed session skips the client certificate, and with it the revocation check.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The server side of a joining node's connection: no client certificate is asked for; the chain sent
/// carries the CA's certificate after the node's, so the joiner can check it against its token.
pub fn join_server_config(ca_pem: &str, identity: &NodeIdentity) -> Result<Arc<rustls::ServerConfig>> {
    let (mut certs, key) = identity.chain()?;
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        certs.push(ca.map_err(|e| config_err(format!("CA certificate: {e}")))?);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(config_err)?;
    config.alpn_protocols = vec![JOIN_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The client side of a join: trusts a server only when its chain holds a CA certificate whose SHA-256 is
/// `pin` (from the token) and its own certificate is a member's that CA signed. Nothing is sent before.
pub fn join_client_config(pin: [u8; 32]) -> Result<Arc<rustls::ClientConfig>> {
    let verifier = Arc::new(PinnedCa { pin, provider: provider() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![JOIN_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// Verifies members (the CA signed them) and refuses removed nodes.
#[derive(Debug)]
struct MemberVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    cluster_id: String,
    revoked: Arc<RevokedNodes>,
}

impl rustls::server::danger::ClientCertVerifier for MemberVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        match cert_node_id(&self.cluster_id, end_entity) {
            Some(node) if !self.revoked.contains(node) => Ok(verified),
            Some(_) => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)),
            None => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A joiner's check of the server: the CA in its chain is the one the token pins, and the server's
/// certificate is one that CA signed for a member of the cluster.
#[derive(Debug)]
struct PinnedCa {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest as _;
        let pinned =
            intermediates.iter().find(|c| <[u8; 32]>::from(sha2::Sha256::digest(c.as_ref())) == self.pin).ok_or_else(
                || rustls::Error::General("the server's cluster CA is not the one the join token names".into()),
            )?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pinned.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
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
    use tokio_rustls::rustls::pki_types::CertificateSigningRequestDer;
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
        let revoked = Arc::new(RevokedNodes::default());
        let server = server_config(CLUSTER, ca.cert_pem(), &one, revoked.clone()).unwrap();
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
        let impostor =
            server_config(CLUSTER, rogue_ca.cert_pem(), &rogue_ca.issue(1, "10.0.0.1").unwrap(), revoked.clone())
                .unwrap();
        assert_eq!(exchange(impostor, member.clone(), 1).await, (false, false), "a rogue server is refused");
        assert_eq!(exchange(server.clone(), member.clone(), 2).await, (false, false), "node 1 cannot pass for node 2");

        // A removed node's certificate is refused from then on; the others still talk.
        revoked.extend([2]);
        assert_eq!(exchange(server.clone(), member, 1).await, (false, false), "a removed node is refused");
        let three = client_config(ca.cert_pem(), &ca.issue(3, "10.0.0.3").unwrap()).unwrap();
        assert_eq!(exchange(server, three, 1).await, (true, true), "a member that was not removed still talks");
    }

    #[tokio::test]
    async fn a_joiner_trusts_only_the_pinned_ca_and_gets_a_certificate_for_its_own_key() {
        let ca = ClusterCa::generate(CLUSTER).unwrap();
        let one = ca.issue(1, "10.0.0.1").unwrap();
        let join_server = join_server_config(ca.cert_pem(), &one).unwrap();
        let pin = fingerprint(ca.cert_pem()).unwrap();
        let name = ServerName::try_from(cluster_name(CLUSTER)).unwrap();
        let handshake = |client: Arc<rustls::ClientConfig>, server: Arc<rustls::ServerConfig>| {
            let name = name.clone();
            async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::spawn(async move {
                    let (socket, _) = listener.accept().await.unwrap();
                    let _ = TlsAcceptor::from(server).accept(socket).await;
                });
                let socket = TcpStream::connect(addr).await.unwrap();
                TlsConnector::from(client).connect(name, socket).await.is_ok()
            }
        };
        assert!(handshake(join_client_config(pin).unwrap(), join_server.clone()).await, "the pinned CA is trusted");
        assert!(!handshake(join_client_config([0; 32]).unwrap(), join_server).await, "another pin is not");
        // A server of another cluster CA that sends its own CA in its chain is not trusted either.
        let rogue = ClusterCa::generate(CLUSTER).unwrap();
        let rogue_server = join_server_config(rogue.cert_pem(), &rogue.issue(1, "10.0.0.1").unwrap()).unwrap();
        assert!(!handshake(join_client_config(pin).unwrap(), rogue_server).await, "a rogue CA is not trusted");

        // The CA signs the joiner's CSR for the id it chooses; the result works as a member's identity.
        let (csr, key_pem) = make_csr().unwrap();
        let cert_pem = ca.sign_csr(7, "node7.example", &csr).unwrap();
        assert_eq!(
            cert_node_id(CLUSTER, CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap().as_ref()),
            Some(7)
        );
        let seven = NodeIdentity { cert_pem, key_pem };
        let server = server_config(CLUSTER, ca.cert_pem(), &one, Arc::new(RevokedNodes::default())).unwrap();
        assert_eq!(exchange(server, client_config(ca.cert_pem(), &seven).unwrap(), 1).await, (true, true));
        // A CSR whose signature does not hold (its body changed) is refused.
        let der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let tampered = format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n");
        assert!(ca.sign_csr(8, "10.0.0.8", &tampered).is_err());
    }

    #[tokio::test]
    async fn a_stored_ca_signs_again_and_keys_stay_out_of_debug_output() {
        let ca = ClusterCa::generate(CLUSTER).unwrap();
        let key_pem = ca.key_pem();
        let again = ClusterCa::load(CLUSTER, ca.cert_pem(), &key_pem).unwrap();
        // A node the reloaded CA signed talks to one the original signed: the same authority.
        let server =
            server_config(CLUSTER, ca.cert_pem(), &ca.issue(1, "10.0.0.1").unwrap(), Default::default()).unwrap();
        let client = client_config(ca.cert_pem(), &again.issue(4, "10.0.0.4").unwrap()).unwrap();
        assert_eq!(exchange(server, client, 1).await, (true, true));
        let printed = format!("{ca:?} {again:?} {:?}", again.issue(5, "10.0.0.5").unwrap());
        assert!(!printed.contains("PRIVATE KEY") && !printed.contains(&key_pem[40..80]), "{printed}");
        assert!(ClusterCa::load(CLUSTER, ca.cert_pem(), "not a key").is_err());
    }
}
