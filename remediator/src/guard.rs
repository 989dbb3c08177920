//! The guards: the pure checks (allow-list, pauses, attempt limits and cooldowns,
//! circuit breakers) are `remediator_policy::guard`, re-exported here, so `explain` runs
//! them offline; this module adds where their state is kept.

use async_trait::async_trait;

use crate::error::AwsError;

pub use remediator_policy::guard::*;

/// Where the guards' state is kept (the state table, one partition: one query reads it).
#[async_trait]
pub trait GuardStore: Send + Sync {
    /// Pauses that have not expired, attempts and circuits.
    async fn load(&self, now: i64) -> Result<GuardState, AwsError>;
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
}
