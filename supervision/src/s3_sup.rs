//! Supervises the S3 listener and, as temporary children, one session actor per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::faults::FaultAdmin;
use hoard_actors::NodeContext;
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
pub const S3_SUP_POLICY: RestartPolicy = RestartPolicy { max_restarts: 5, window: Duration::from_secs(60) };

/// `addr` is where to listen; after the first start it is pinned to the bound address, so a restarted
/// listener comes back on the same port even when asked for port 0.
pub fn spec(
    ctx: NodeContext,
    addr: SocketAddr,
    credentials: Vec<(String, String)>,
    bound: watch::Sender<Option<SocketAddr>>,
    faults: Option<Arc<dyn FaultAdmin>>,
    trust_proxy_tls: bool,
    stats: Arc<SupStats>,
) -> SupSpec {
    let addr = Arc::new(Mutex::new(addr));
    let listener = ChildSpec::new("listener", move |parent| {
        let frontend =
            hoard_s3::frontend(ctx.clone(), parent.clone(), credentials.clone(), faults.clone(), trust_proxy_tls);
        let bound = bound.clone();
        let addr = addr.clone();
        async move {
            let at = *addr.lock().unwrap_or_else(|p| p.into_inner());
            let args = ListenerArgs { addr: at, frontend, bound: bound.clone() };
            let (r, _) = Listener::spawn_linked(Some(format!("listener-{}", uniq())), Listener, args, parent).await?;
            if let Some(b) = *bound.borrow() {
                *addr.lock().unwrap_or_else(|p| p.into_inner()) = b;
            }
            Ok(r.get_cell())
        }
        .boxed()
    });
    SupSpec { name: "s3_sup", policy: S3_SUP_POLICY, children: vec![listener], stats }
}
