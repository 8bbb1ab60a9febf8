//! Supervises one shard actor per local disk.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::faults::FaultInjector;
use hoard_actors::shard::ShardActor;
use hoard_actors::shard::ShardArgs;
use hoard_actors::shard::ShardHandle;
use ractor::Actor;

use crate::sup::uniq;
use crate::sup::ChildSpec;
use crate::sup::RestartPolicy;
use crate::sup::SupSpec;
use crate::sup::SupStats;

/// A shard actor holds no state worth keeping: restart freely, but a disk actor that dies 10 times a
/// minute means a bad disk: escalate, and the root reports disk_sup down while it backs off.
pub const DISK_SUP_POLICY: RestartPolicy =
    RestartPolicy { max_restarts: 10, window: Duration::from_secs(60), escalate: true };

pub fn spec(disks: Vec<ShardHandle>, faults: Arc<dyn FaultInjector>, stats: Arc<SupStats>) -> SupSpec {
    let children = disks
        .into_iter()
        .map(|handle| {
            let faults = faults.clone();
            ChildSpec::new(format!("shard-{}", handle.index), move |parent| {
                let handle = handle.clone();
                let args = ShardArgs { io: handle.io.clone(), faults: faults.clone(), stats: handle.stats.clone() };
                async move {
                    let (r, _) = ShardActor::spawn_linked(
                        Some(format!("shard-{}-{}", handle.index, uniq())),
                        ShardActor,
                        args,
                        parent,
                    )
                    .await?;
                    handle.slot.set(r.clone());
                    Ok(r.get_cell())
                }
                .boxed()
            })
        })
        .collect();
    SupSpec { name: "disk_sup", policy: DISK_SUP_POLICY, children, stats }
}
