//! Configuration of `hoard serve`: command-line flags, then `HOARD_*` environment variables (clap reads
//! both), then the TOML file named by `--config`, then defaults — the first that says something wins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use hoard_protocol::Credential;
use hoard_s3::listener::ConnectionLimits;
use hoard_s3::tls::TlsFiles;
use serde::Deserialize;

use crate::cluster_files::ClusterFiles;
use crate::node::NodeOptions;

/// The shortest scrub grace an operator may set: longer than any PUT takes between syncing its shard
/// files and committing them.
pub const MIN_SCRUB_GRACE_SECS: u64 = 60;

/// The most threads `--runtime-threads` may ask for: a typo of a few more digits must not start a process
/// that spawns threads until the system refuses.
pub const MAX_RUNTIME_THREADS: usize = 1024;

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and HOARD_* variables override it).
    #[arg(long, env = "HOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where hoard keeps metadata and, by default, its disk directories.
    #[arg(long, env = "HOARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A disk directory (repeat for each disk; comma-separated in HOARD_DISK). Default: data-shards +
    /// parity-shards directories under the data dir.
    #[arg(long = "disk", env = "HOARD_DISK", value_delimiter = ',')]
    pub disks: Vec<PathBuf>,
    /// Data shards per stripe (k).
    #[arg(long, env = "HOARD_DATA_SHARDS")]
    pub data_shards: Option<u8>,
    /// Parity shards per stripe (m): how many disks may be lost.
    #[arg(long, env = "HOARD_PARITY_SHARDS")]
    pub parity_shards: Option<u8>,
    /// Address of the S3 endpoint (HTTPS when --tls-cert and --tls-key are given).
    #[arg(long, env = "HOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) for HTTPS on --listen.
    #[arg(long, env = "HOARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "HOARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Also serve plain HTTP here, beside HTTPS on --listen (SSE-C is refused on it).
    #[arg(long, env = "HOARD_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Seconds between background scrub passes (0: never on its own).
    #[arg(long, env = "HOARD_SCRUB_INTERVAL")]
    pub scrub_interval: Option<u64>,
    /// Seconds an unreferenced shard file must age before scrub deletes it.
    #[arg(long, env = "HOARD_SCRUB_GRACE")]
    pub scrub_grace: Option<u64>,
    /// Allow arming fault points (for testing); refused unless set.
    #[arg(long, env = "HOARD_FAULT_INJECTION")]
    pub fault_injection: bool,
    /// The master key: a file of 32 raw bytes, 64 hex digits or base64 of 32 bytes. Keep it off the data
    /// disks. Without it objects are stored unencrypted.
    #[arg(long, env = "HOARD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Accept SSE-C over plain HTTP, for a node behind a TLS-terminating proxy you trust: customer keys
    /// then cross the proxy-to-node hop in clear.
    #[arg(long, env = "HOARD_TRUST_PROXY_TLS")]
    pub trust_proxy_tls: bool,
    /// Export traces over OTLP/gRPC to this collector or Jaeger, e.g. http://127.0.0.1:4317.
    #[arg(long, env = "HOARD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Open S3 connections per listener [default: 4096].
    #[arg(long, env = "HOARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open S3 connections from one client IP address [default: 1024].
    #[arg(long, env = "HOARD_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds from accepting a connection to its first request's headers, TLS handshake included; also the
    /// time any request's headers may take [default: 10; at most 30].
    #[arg(long, env = "HOARD_FIRST_REQUEST_TIMEOUT")]
    pub first_request_timeout: Option<u64>,
    /// Seconds a connection with no request in flight stays open [default: 60].
    #[arg(long, env = "HOARD_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds between HTTP/2 pings; a connection that does not answer one in as long is closed [default: 30].
    #[arg(long, env = "HOARD_HTTP2_KEEPALIVE")]
    pub http2_keepalive: Option<u64>,
    /// Seconds a graceful stop (SIGTERM, Ctrl-C) lets requests in flight finish before it closes their
    /// connections [default: 30]. A second signal stops at once.
    #[arg(long, env = "HOARD_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<u64>,
    /// In a cluster: where the peer server binds, when not the node address given to `cluster init`/`join`
    /// (behind NAT, in a container).
    #[arg(long, env = "HOARD_PEER_LISTEN")]
    pub peer_listen: Option<SocketAddr>,
    /// Threads that run the requests' async work [default: one per core]. Hashing, encryption, coding and
    /// disk I/O have threads of their own.
    #[arg(long, env = "HOARD_RUNTIME_THREADS")]
    pub runtime_threads: Option<usize>,
}

/// The TOML file's shape: the same names as the flags, with underscores.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub disks: Vec<PathBuf>,
    pub data_shards: Option<u8>,
    pub parity_shards: Option<u8>,
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub http_listen: Option<SocketAddr>,
    pub scrub_interval: Option<u64>,
    pub scrub_grace: Option<u64>,
    pub fault_injection: Option<bool>,
    pub master_key_file: Option<PathBuf>,
    pub trust_proxy_tls: Option<bool>,
    pub otlp_endpoint: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub first_request_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub http2_keepalive: Option<u64>,
    pub shutdown_timeout: Option<u64>,
    pub peer_listen: Option<SocketAddr>,
    pub runtime_threads: Option<usize>,
}

impl ServeArgs {
    /// Merges flags/env, the file, and defaults into the options a node starts with.
    pub fn resolve(&self) -> anyhow::Result<NodeOptions> {
        let file: FileConfig = match &self.config {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let limits = self.limits(&file)?;
        let data_dir = self.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("hoard-data"));
        let mut o = NodeOptions::new(data_dir);
        o.limits = limits;
        o.disks = if self.disks.is_empty() { file.disks } else { self.disks.clone() };
        // A cluster member (cluster files in the data dir) takes its id and, unless told otherwise, its coding
        // from them.
        let cluster = ClusterFiles::load(&o.data_dir)?;
        let coding = cluster.as_ref().map(|c| (c.settings.data_shards, c.settings.parity_shards)).unwrap_or_default();
        o.data_shards = self.data_shards.or(file.data_shards).or(coding.0).unwrap_or(4);
        o.parity_shards = self.parity_shards.or(file.parity_shards).or(coding.1).unwrap_or(2);
        if let Some(cluster) = cluster {
            o.node_id = cluster.settings.node_id;
            o.peer = Some(cluster.peer_options(self.peer_listen.or(file.peer_listen))?);
        }
        if let Some(l) = self.listen.or(file.listen) {
            o.listen = l;
        }
        o.tls = match (self.tls_cert.clone().or(file.tls_cert), self.tls_key.clone().or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("give both --tls-cert and --tls-key, or neither"),
        };
        o.http_listen = self.http_listen.or(file.http_listen);
        o.check_endpoints()?;
        if let Some(s) = self.scrub_interval.or(file.scrub_interval) {
            o.scrub_interval = (s > 0).then(|| Duration::from_secs(s));
        }
        if let Some(s) = self.scrub_grace.or(file.scrub_grace) {
            if s < MIN_SCRUB_GRACE_SECS {
                anyhow::bail!(
                    "--scrub-grace must be at least {MIN_SCRUB_GRACE_SECS} seconds: a shorter grace could delete the \
                     shard files of a PUT that is still committing"
                );
            }
            o.scrub_grace = Duration::from_secs(s);
        }
        o.fault_injection = self.fault_injection || file.fault_injection.unwrap_or(false);
        o.master_key_file = self.master_key_file.clone().or(file.master_key_file);
        o.trust_proxy_tls = self.trust_proxy_tls || file.trust_proxy_tls.unwrap_or(false);
        o.otlp_endpoint = self.otlp_endpoint.clone().or(file.otlp_endpoint);
        if let Some(endpoint) = &o.otlp_endpoint {
            crate::telemetry::check_endpoint(endpoint)?;
        }
        if let Some(s) = self.shutdown_timeout.or(file.shutdown_timeout) {
            o.shutdown_timeout = Duration::from_secs(s);
        }
        o.runtime_threads = self.runtime_threads.or(file.runtime_threads);
        if o.runtime_threads.is_some_and(|n| !(1..=MAX_RUNTIME_THREADS).contains(&n)) {
            anyhow::bail!("--runtime-threads must be between 1 and {MAX_RUNTIME_THREADS}");
        }
        o.root_credential = root_credential_from_env()?;
        Ok(o)
    }
}

impl ServeArgs {
    fn limits(&self, file: &FileConfig) -> anyhow::Result<ConnectionLimits> {
        let mut l = ConnectionLimits::default();
        l.max_connections = self.max_connections.or(file.max_connections).unwrap_or(l.max_connections);
        l.max_connections_per_ip =
            self.max_connections_per_ip.or(file.max_connections_per_ip).unwrap_or(l.max_connections_per_ip);
        let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map(Duration::from_secs).unwrap_or(default)
        };
        l.first_request = secs(self.first_request_timeout, file.first_request_timeout, l.first_request);
        l.idle = secs(self.idle_timeout, file.idle_timeout, l.idle);
        l.http2_keepalive = secs(self.http2_keepalive, file.http2_keepalive, l.http2_keepalive);
        if l.max_connections == 0 || l.max_connections_per_ip == 0 {
            anyhow::bail!("--max-connections and --max-connections-per-ip must be at least 1");
        }
        if l.first_request.is_zero() || l.first_request > MAX_FIRST_REQUEST {
            anyhow::bail!("--first-request-timeout must be from 1 to {} seconds", MAX_FIRST_REQUEST.as_secs());
        }
        if l.idle.is_zero() || l.http2_keepalive.is_zero() {
            anyhow::bail!("--idle-timeout and --http2-keepalive must be at least 1 second");
        }
        Ok(l)
    }
}

/// The longest an operator may let a connection wait for its first request: a silent connection holds a
/// slot of the per-address cap for this long.
pub const MAX_FIRST_REQUEST: Duration = Duration::from_secs(30);

/// `HOARD_ROOT_ACCESS_KEY` and `HOARD_ROOT_SECRET_KEY`, both or neither.
pub fn root_credential_from_env() -> anyhow::Result<Option<Credential>> {
    let a = std::env::var("HOARD_ROOT_ACCESS_KEY").ok().filter(|s| !s.is_empty());
    let s = std::env::var("HOARD_ROOT_SECRET_KEY").ok().filter(|s| !s.is_empty());
    match (a, s) {
        (Some(access_key), Some(secret_key)) => {
            if access_key.len() < 3 || secret_key.len() < 8 {
                anyhow::bail!(
                    "HOARD_ROOT_ACCESS_KEY must be at least 3 characters and HOARD_ROOT_SECRET_KEY at least 8"
                );
            }
            Ok(Some(Credential { access_key, secret_key }))
        }
        (None, None) => Ok(None),
        _ => anyhow::bail!("set both HOARD_ROOT_ACCESS_KEY and HOARD_ROOT_SECRET_KEY, or neither"),
    }
}

/// True when every directory is on one filesystem (so the disks do not fail independently).
pub fn same_filesystem(paths: &[PathBuf]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let devs: Vec<u64> = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.dev()).collect();
    devs.len() > 1 && devs.iter().all(|d| *d == devs[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("hoard.toml");
        std::fs::write(&cfg, "data_shards = 3\nparity_shards = 1\nlisten = \"127.0.0.1:9100\"\n").unwrap();
        let args = ServeArgs { config: Some(cfg), parity_shards: Some(2), ..Default::default() };
        let o = args.resolve().unwrap();
        assert_eq!(o.data_shards, 3);
        assert_eq!(o.parity_shards, 2);
        assert_eq!(o.listen.port(), 9100);
        assert_eq!(o.disk_paths().len(), 5);
    }

    #[test]
    fn a_scrub_grace_under_a_minute_is_refused() {
        let args = ServeArgs { scrub_grace: Some(5), ..Default::default() };
        let Err(err) = args.resolve() else { panic!("a 5 s grace must be refused") };
        assert!(format!("{err:#}").contains("at least 60 seconds"), "{err:#}");
    }

    #[test]
    fn tls_needs_both_files_and_http_listen_needs_tls() {
        let args = ServeArgs { tls_cert: Some("cert.pem".into()), ..Default::default() };
        let Err(err) = args.resolve() else { panic!("a certificate without a key must be refused") };
        assert!(format!("{err:#}").contains("--tls-key"), "{err:#}");
        let args = ServeArgs { http_listen: Some("127.0.0.1:9080".parse().unwrap()), ..Default::default() };
        let Err(err) = args.resolve() else { panic!("--http-listen without TLS must be refused") };
        assert!(format!("{err:#}").contains("--tls-cert"), "{err:#}");
        let args = ServeArgs {
            tls_cert: Some("cert.pem".into()),
            tls_key: Some("key.pem".into()),
            http_listen: Some("127.0.0.1:9080".parse().unwrap()),
            ..Default::default()
        };
        let o = args.resolve().unwrap();
        assert_eq!(o.tls, Some(TlsFiles { cert: "cert.pem".into(), key: "key.pem".into() }));
        assert_eq!(o.http_listen.map(|a| a.port()), Some(9080));
    }

    #[test]
    fn connection_limits_come_from_flags_then_the_file_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("hoard.toml");
        std::fs::write(&cfg, "max_connections_per_ip = 8\nidle_timeout = 5\n").unwrap();
        let args = ServeArgs { config: Some(cfg), idle_timeout: Some(7), ..Default::default() };
        let l = args.resolve().unwrap().limits;
        assert_eq!((l.max_connections_per_ip, l.idle), (8, Duration::from_secs(7)));
        assert_eq!(l.first_request, ConnectionLimits::default().first_request);
        assert!(l.first_request <= MAX_FIRST_REQUEST);
        let args = ServeArgs { first_request_timeout: Some(31), ..Default::default() };
        assert!(args.resolve().is_err(), "a first-request timeout over 30 s is refused");
        let args = ServeArgs { max_connections_per_ip: Some(0), ..Default::default() };
        assert!(args.resolve().is_err(), "a cap of 0 is refused");
    }

    /// The sample configuration shipped beside the systemd unit is one this build reads, and says what it
    /// seems to say.
    #[test]
    fn the_sample_config_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("hoard.toml");
        std::fs::write(&cfg, include_str!("../dist/hoard.toml")).unwrap();
        let o = ServeArgs { config: Some(cfg), ..Default::default() }.resolve().unwrap();
        assert_eq!(o.data_dir, PathBuf::from("/var/lib/hoard"));
        assert_eq!((o.disks.len(), o.data_shards, o.parity_shards), (6, 4, 2));
        assert!(o.tls.is_some() && o.master_key_file.is_some());
        assert_eq!(o.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(o.limits, ConnectionLimits::default());
        let args = ServeArgs { shutdown_timeout: Some(5), ..Default::default() };
        assert_eq!(args.resolve().unwrap().shutdown_timeout, Duration::from_secs(5));
        assert_eq!(o.runtime_threads, None, "one runtime thread per core unless told");
    }

    #[test]
    fn runtime_threads_come_from_the_flag_then_the_file_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("hoard.toml");
        std::fs::write(&cfg, "runtime_threads = 3\n").unwrap();
        let args = ServeArgs { config: Some(cfg.clone()), ..Default::default() };
        assert_eq!(args.resolve().unwrap().runtime_threads, Some(3));
        let args = ServeArgs { config: Some(cfg), runtime_threads: Some(1), ..Default::default() };
        assert_eq!(args.resolve().unwrap().runtime_threads, Some(1));
        for refused in [0, MAX_RUNTIME_THREADS + 1, usize::MAX] {
            let args = ServeArgs { runtime_threads: Some(refused), ..Default::default() };
            let Err(err) = args.resolve() else { panic!("{refused} runtime threads must be refused") };
            assert!(format!("{err:#}").contains("--runtime-threads"), "{err:#}");
        }
        let args = ServeArgs { runtime_threads: Some(MAX_RUNTIME_THREADS), ..Default::default() };
        assert_eq!(args.resolve().unwrap().runtime_threads, Some(MAX_RUNTIME_THREADS));
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("hoard.toml");
        std::fs::write(&cfg, "data_shard = 3\n").unwrap();
        let args = ServeArgs { config: Some(cfg), ..Default::default() };
        let Err(err) = args.resolve() else { panic!("a misspelt key must be refused") };
        assert!(format!("{err:#}").contains("data_shard"), "{err:#}");
    }
}
