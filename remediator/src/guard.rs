//! The guards: the pure checks (allow-list, pauses, attempt limits and cooldowns,
//! circuit breakers) are `remediator_policy::guard`, re-exported here, so `explain` runs
//! them offline; this module adds where their state is kept.

use async_trait::async_trait;

use crate::error::AwsError;

pub use remediator_policy::guard::*;

/// A step the guards look at: its policy and its target.
pub type GuardKey = (String, String);

/// The guard keys of a plan's changes.
pub fn guard_keys(plan: &crate::plan::Plan) -> Vec<GuardKey> {
    let mut keys: Vec<GuardKey> = plan
        .steps
        .iter()
        .filter(|s| s.action.is_mutating())
        .filter_map(|s| Some((s.policy.clone(), s.target.clone()?)))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Where the guards' state is kept. Sharded so that nothing grows with the number of
/// accounts or targets on the hot path: the pauses (set by people, few) in one small
/// partition, each target's attempts and circuit in a partition of its own; a handling
/// reads the pauses and the partitions of its plan's targets, in parallel.
#[async_trait]
pub trait GuardStore: Send + Sync {
    /// Pauses that have not expired, and the attempts and circuits of `keys` (none: the
    /// pauses alone, as the preflight and the commands need).
    async fn load(&self, now: i64, keys: &[GuardKey]) -> Result<GuardState, AwsError>;
    async fn set_pause(&self, pause: &Pause) -> Result<(), AwsError>;
    /// Removes a pause; returns whether there was one.
    async fn clear_pause(&self, scope: &PauseScope) -> Result<bool, AwsError>;
    /// Records a change made to `target` by `policy`, keeping times within `keep` seconds.
    async fn record_attempt(&self, policy: &str, target: &str, at: i64, keep: i64) -> Result<(), AwsError>;
    /// Counts a failed remediation of `target`; returns the circuit after it.
    async fn record_failure(&self, target: &str, incident: &str) -> Result<Circuit, AwsError>;
    /// A successful remediation ends a run of failures.
    async fn record_success(&self, target: &str) -> Result<(), AwsError>;
    /// Closes a circuit (`remediator reset`); returns whether there was one.
    async fn reset(&self, target: &str) -> Result<bool, AwsError>;
    /// Moves what an earlier version kept elsewhere to where this one keeps it (the
    /// sweep and `bootstrap` call it; idempotent); returns how many items moved.
    async fn migrate(&self) -> Result<usize, AwsError> {
        Ok(0)
    }
}
