//! Supervises the background maintenance actors: scrub, repair, master-key rotation and rebalance.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::rebalance::RebalanceActor;
use hoard_actors::repair::RepairActor;
use hoard_actors::rotation::RotationActor;
use hoard_actors::scrub::ScrubActor;
use hoard_actors::NodeContext;
use ractor::Actor;

use crate::sup::uniq;
use crate::sup::ChildSpec;
use crate::sup::RestartPolicy;
use crate::sup::SupSpec;
use crate::sup::SupStats;

/// Background work can always be resumed later: restart freely.
pub const MAINTENANCE_SUP_POLICY: RestartPolicy =
    RestartPolicy { max_restarts: 20, window: Duration::from_secs(60), escalate: true };

pub fn spec(ctx: NodeContext, stats: Arc<SupStats>) -> SupSpec {
    let c1 = ctx.clone();
    let repair = ChildSpec::new("repair", move |parent| {
        let ctx = c1.clone();
        async move {
            let (r, _) =
                RepairActor::spawn_linked(Some(format!("repair-{}", uniq())), RepairActor, ctx.clone(), parent).await?;
            ctx.repair.slot.set(r.clone());
            Ok(r.get_cell())
        }
        .boxed()
    });
    let c3 = ctx.clone();
    let rotation = ChildSpec::new("rotation", move |parent| {
        let ctx = c3.clone();
        async move {
            let name = Some(format!("rotation-{}", uniq()));
            let (r, _) = RotationActor::spawn_linked(name, RotationActor, ctx.clone(), parent).await?;
            ctx.rotation.slot.set(r.clone());
            Ok(r.get_cell())
        }
        .boxed()
    });
    let c4 = ctx.clone();
    let rebalance = ChildSpec::new("rebalance", move |parent| {
        let ctx = c4.clone();
        async move {
            let name = Some(format!("rebalance-{}", uniq()));
            let (r, _) = RebalanceActor::spawn_linked(name, RebalanceActor, ctx.clone(), parent).await?;
            ctx.rebalance.slot.set(r.clone());
            Ok(r.get_cell())
        }
        .boxed()
    });
    let c2 = ctx;
    let scrub = ChildSpec::new("scrub", move |parent| {
        let ctx = c2.clone();
        async move {
            let (r, _) =
                ScrubActor::spawn_linked(Some(format!("scrub-{}", uniq())), ScrubActor, ctx.clone(), parent).await?;
            ctx.scrub.slot.set(r.clone());
            Ok(r.get_cell())
        }
        .boxed()
    });
    SupSpec {
        name: "maintenance_sup",
        policy: MAINTENANCE_SUP_POLICY,
        children: vec![repair, scrub, rotation, rebalance],
        stats,
    }
}
