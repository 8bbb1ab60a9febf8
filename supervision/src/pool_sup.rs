//! Supervises the CPU worker pools: the EC coders and the encryptors.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::ec_pool::EcPool;
use hoard_actors::ec_pool::EcWorker;
use hoard_actors::encryptor::EncryptorPool;
use hoard_actors::encryptor::EncryptorWorker;
use hoard_actors::faults::FaultInjector;
use ractor::Actor;

use crate::sup::uniq;
use crate::sup::ChildSpec;
use crate::sup::RestartPolicy;
use crate::sup::SupSpec;
use crate::sup::SupStats;

/// Workers are stateless; a crashed one costs one request. Restart generously.
pub const POOL_SUP_POLICY: RestartPolicy =
    RestartPolicy { max_restarts: 50, window: Duration::from_secs(60), escalate: true };

pub fn spec(ec: EcPool, encryptor: EncryptorPool, faults: Arc<dyn FaultInjector>, stats: Arc<SupStats>) -> SupSpec {
    let mut children = Vec::new();
    for (i, slot) in ec.pool.slots().iter().enumerate() {
        let slot = slot.clone();
        let faults = faults.clone();
        children.push(ChildSpec::new(format!("ec-{i}"), move |parent| {
            let slot = slot.clone();
            let faults = faults.clone();
            async move {
                let (r, _) =
                    EcWorker::spawn_linked(Some(format!("ec-{i}-{}", uniq())), EcWorker, faults, parent).await?;
                slot.set(r.clone());
                Ok(r.get_cell())
            }
            .boxed()
        }));
    }
    for (i, slot) in encryptor.pool.slots().iter().enumerate() {
        let slot = slot.clone();
        let faults = faults.clone();
        children.push(ChildSpec::new(format!("encryptor-{i}"), move |parent| {
            let slot = slot.clone();
            let faults = faults.clone();
            async move {
                let (r, _) = EncryptorWorker::spawn_linked(
                    Some(format!("encryptor-{i}-{}", uniq())),
                    EncryptorWorker,
                    faults,
                    parent,
                )
                .await?;
                slot.set(r.clone());
                Ok(r.get_cell())
            }
            .boxed()
        }));
    }
    SupSpec { name: "pool_sup", policy: POOL_SUP_POLICY, children, stats }
}
