//! Supervises the S3 listeners (one per address: HTTP, HTTPS) and, as temporary children, one session actor per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::faults::FaultAdmin;
use hoard_actors::NodeContext;
use hoard_protocol::Credential;
use hoard_s3::auth::Credentials;
use hoard_s3::listener::ConnectionLimits;
use hoard_s3::listener::Drain;
use hoard_s3::listener::Listener;
use hoard_s3::listener::ListenerArgs;
use ractor::Actor;
use tokio::sync::watch;

use crate::sup::uniq;
use crate::sup::ChildSpec;
use crate::sup::RestartPolicy;
use crate::sup::SupSpec;
use crate::sup::SupStats;

/// The listener restarts (rebinding its address) up to 5 times a minute.
pub const S3_SUP_POLICY: RestartPolicy =
    RestartPolicy { max_restarts: 5, window: Duration::from_secs(60), escalate: true };

/// One address the node serves S3 on.
#[derive(Clone)]
pub struct Endpoint {
    /// Where to listen the first time.
    pub addr: SocketAddr,
    /// HTTPS with this configuration, or plain HTTP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Told the bound address each time the listener starts. A restarted listener binds it again, so it
    /// comes back on the same port even when first asked for port 0.
    pub bound: watch::Sender<Option<SocketAddr>>,
    /// The node's graceful stop, the same for each of its endpoints.
    pub drain: Drain,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>, drain: Drain) -> Endpoint {
        Endpoint { addr, tls, bound: watch::channel(None).0, drain }
    }

    /// Waits until the listener has bound its address.
    pub async fn bound_addr(&self) -> anyhow::Result<SocketAddr> {
        let mut rx = self.bound.subscribe();
        let a = *rx.wait_for(|a| a.is_some()).await.map_err(|_| anyhow::anyhow!("listener never bound"))?;
        a.ok_or_else(|| anyhow::anyhow!("listener never bound"))
    }
}

/// One listener child per endpoint. `given` is the operator's root credential; without one, requests are
/// checked against the one metadata keeps. SSE-C is accepted on HTTPS endpoints, and on plain ones only when
/// `trust_proxy_tls` says a TLS-terminating proxy the operator trusts is in front.
pub fn spec(
    ctx: NodeContext,
    endpoints: Vec<Endpoint>,
    given: Option<Credential>,
    faults: Option<Arc<dyn FaultAdmin>>,
    trust_proxy_tls: bool,
    limits: ConnectionLimits,
    stats: Arc<SupStats>,
) -> SupSpec {
    let children = endpoints
        .into_iter()
        .map(|endpoint| {
            let (ctx, given, faults) = (ctx.clone(), given.clone(), faults.clone());
            ChildSpec::new("listener", move |parent| {
                let secure = endpoint.tls.is_some() || trust_proxy_tls;
                let credentials = match &given {
                    Some(c) => Credentials::new([(c.access_key.clone(), c.secret_key.clone())]),
                    None => Credentials::stored(ctx.clone()),
                };
                let frontend = hoard_s3::frontend(ctx.clone(), parent.clone(), credentials, faults.clone(), secure);
                let (endpoint, net) = (endpoint.clone(), ctx.net.clone());
                async move {
                    let at = endpoint.bound.borrow().unwrap_or(endpoint.addr);
                    let args = ListenerArgs {
                        addr: at,
                        frontend,
                        bound: endpoint.bound.clone(),
                        tls: endpoint.tls,
                        limits,
                        drain: endpoint.drain,
                        net,
                    };
                    let (r, _) =
                        Listener::spawn_linked(Some(format!("listener-{}", uniq())), Listener, args, parent).await?;
                    Ok(r.get_cell())
                }
                .boxed()
            })
        })
        .collect();
    SupSpec { name: "s3_sup", policy: S3_SUP_POLICY, children, stats }
}
