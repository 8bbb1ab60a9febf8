//! The parts of hoard's deterministic simulation: the bytes its workload writes (`body`), the operations it
//! draws from a seed (`workload`), the client that sends them (`client`) and the driver that tells the oracle
//! what happened (`run`), what must hold of every run (`oracle`), the run's trace hash (`trace`), the cluster on
//! turmoil's network (`cluster`), the faults drawn from a seed (`schedule`) and one whole run (`driver`).

pub mod body;
pub mod client;
pub mod cluster;
pub mod driver;
pub mod oracle;
pub mod run;
pub mod schedule;
pub mod trace;
pub mod workload;

/// The seeds a run takes: `HOARD_SIM_SEED` alone replays one; `HOARD_SIM_SEEDS=n` runs `n` seeds from
/// `HOARD_SIM_SEED_START` (default 1); otherwise `fixed`.
pub fn seeds(fixed: &[u64]) -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(seed) = var("HOARD_SIM_SEED") {
        return vec![seed];
    }
    match var("HOARD_SIM_SEEDS") {
        Some(n) => {
            let start = var("HOARD_SIM_SEED_START").unwrap_or(1);
            (start..start.saturating_add(n)).collect()
        }
        None => fixed.to_vec(),
    }
}

/// The line a failing seed prints: the command that replays it, and its trace hash.
pub fn replay_line(seed: u64, trace_hash: &str) -> String {
    format!(
        "replay: HOARD_SIM_SEED={seed} cargo test -p hoard-it --test simulation -- --nocapture  (trace {trace_hash})"
    )
}
