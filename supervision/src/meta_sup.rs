//! Supervises the metadata actor.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::meta::MetaActor;
use hoard_actors::meta::MetaArgs;
use hoard_actors::meta::MetaHandle;
use hoard_actors::meta::MetaSetup;
use ractor::Actor;

use crate::sup::uniq;
use crate::sup::ChildSpec;
use crate::sup::RestartPolicy;
use crate::sup::SupSpec;
use crate::sup::SupStats;

/// Metadata restarts reopen the store and replay the log: allow a few, then escalate.
pub const META_SUP_POLICY: RestartPolicy =
    RestartPolicy { max_restarts: 3, window: Duration::from_secs(60), escalate: true };

pub fn spec(handle: MetaHandle, setup: MetaSetup, stats: Arc<SupStats>) -> SupSpec {
    let child = ChildSpec::new("meta", move |parent| {
        let handle = handle.clone();
        let args = MetaArgs {
            setup: setup.clone(),
            live: handle.live.clone(),
            reader: handle.reader.clone(),
            raft: handle.raft.clone(),
            stores: handle.stores.clone(),
        };
        async move {
            let (r, _) = MetaActor::spawn_linked(Some(format!("meta-{}", uniq())), MetaActor, args, parent).await?;
            handle.slot.set(r.clone());
            Ok(r.get_cell())
        }
        .boxed()
    });
    SupSpec { name: "meta_sup", policy: META_SUP_POLICY, children: vec![child], stats }
}
