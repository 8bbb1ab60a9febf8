//! The root of a node's tree and its direct children's supervisors.
//!
//! ```text
//! node_sup ─ meta_sup, key_keeper, disk_sup, pool_sup, maintenance_sup, s3_sup   (started in this order)
//! ```
//! Order matters: the KeyKeeper reads metadata (a rotation's key file) when it starts, and the S3 listener
//! opens last, when everything it calls is up.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::key_keeper::KeyKeeper;
use hoard_actors::key_keeper::KeyKeeperArgs;
use hoard_actors::key_keeper::KeyKeeperHandle;
use ractor::Actor;

use crate::sup::spawn_sup;
use crate::sup::uniq;
use crate::sup::ChildSpec;
use crate::sup::RestartPolicy;
use crate::sup::SupSpec;
use crate::sup::SupStats;

/// The root never takes the node down: a child that fails more than 3 times in 60 s is restarted every
/// 30 s from then on, reported down (`/health/ready`, `cluster status`) meanwhile, while the node serves
/// what does not need it.
pub const NODE_SUP_POLICY: RestartPolicy =
    RestartPolicy { max_restarts: 3, window: Duration::from_secs(60), escalate: false };

/// The KeyKeeper; every (re)start loads the master key file again.
pub fn key_keeper_child(handle: KeyKeeperHandle, args: KeyKeeperArgs) -> ChildSpec {
    ChildSpec::new("key_keeper", move |parent| {
        let (handle, args) = (handle.clone(), args.clone());
        async move {
            let name = Some(format!("key_keeper-{}", uniq()));
            let (r, _) = KeyKeeper::spawn_linked(name, KeyKeeper, args, parent).await?;
            handle.slot.set(r.clone());
            Ok(r.get_cell())
        }
        .boxed()
    })
}

/// A child that is itself a supervisor built from `make` each time it (re)starts.
pub fn sup_child<F>(name: &'static str, make: F) -> ChildSpec
where
    F: Fn() -> SupSpec + Send + Sync + 'static,
{
    let make = Arc::new(make);
    ChildSpec::new(name, move |parent| {
        let make = make.clone();
        async move { spawn_sup(parent, make()).await }.boxed()
    })
}

pub fn spec(children: Vec<ChildSpec>, stats: Arc<SupStats>) -> SupSpec {
    SupSpec { name: "node_sup", policy: NODE_SUP_POLICY, children, stats }
}
