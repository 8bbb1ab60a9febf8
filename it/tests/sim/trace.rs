//! The trace of a simulated run: every event the run makes, folded into one SHA-256 (the run's trace hash, which
//! the same seed must give again).

use std::fmt::Display;

use sha2::Digest as _;
use sha2::Sha256;

pub struct Trace {
    hasher: Sha256,
    /// Print every event as it is recorded (`HOARD_SIM_VERBOSE=1`).
    verbose: bool,
}

impl Default for Trace {
    fn default() -> Self {
        Trace { hasher: Sha256::new(), verbose: std::env::var("HOARD_SIM_VERBOSE").is_ok_and(|v| v == "1") }
    }
}

impl Trace {
    /// Records `event`; inside a simulation, at the simulated instant it happened.
    pub fn record(&mut self, event: impl Display) {
        let line = match turmoil::sim_elapsed() {
            Some(at) => format!("[{} ms] {event}", at.as_millis()),
            None => event.to_string(),
        };
        if self.verbose {
            eprintln!("{line}");
        }
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
    }

    /// The hash of every event so far, as hex.
    pub fn hash(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_events_give_the_same_hash_and_any_difference_another() {
        let run = |events: &[&str]| {
            let mut t = Trace::default();
            events.iter().for_each(|e| t.record(e));
            t.hash()
        };
        assert_eq!(run(&["put k1", "get k1"]), run(&["put k1", "get k1"]));
        assert_ne!(run(&["put k1", "get k1"]), run(&["get k1", "put k1"]));
        assert_ne!(run(&["ab", "c"]), run(&["a", "bc"]), "events are delimited");
    }
}
