//! `raise-timeout` and `raise-memory`: give a Lambda function more time or memory. What
//! they do, their IAM permissions and their undo are in `remediator`'s `actions/raise.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Action;
use crate::de::{optional, Bounded, Checked, Factor};

/// `max_seconds`: Lambda's timeout runs from 1 s to 900 s.
pub const LAMBDA_TIMEOUT_MIN_SECONDS: i64 = 1;
pub const LAMBDA_TIMEOUT_MAX_SECONDS: i64 = 900;
/// `max_mb`: Lambda's memory runs from 128 MB to 10240 MB.
pub const LAMBDA_MEMORY_MIN_MB: i64 = 128;
pub const LAMBDA_MEMORY_MAX_MB: i64 = 10240;

/// Multiply the function's timeout, up to a cap.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RaiseTimeoutParams")]
pub struct TimeoutParams {
    /// Multiplier of the timeout in force (default 1.5); above 1.
    factor: Option<Checked<Factor>>,
    /// Cap in seconds (default and Lambda maximum 900).
    max_seconds: Option<Checked<Bounded<LAMBDA_TIMEOUT_MIN_SECONDS, LAMBDA_TIMEOUT_MAX_SECONDS>>>,
}

impl TimeoutParams {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::RaiseTimeout {
            factor: optional(self.factor, 1.5, |f| f.0)?,
            max_seconds: optional(self.max_seconds, LAMBDA_TIMEOUT_MAX_SECONDS as u32, |b| b.0 as u32)?,
        })
    }
}

/// Multiply the function's memory, up to a cap.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RaiseMemoryParams")]
pub struct MemoryParams {
    /// Multiplier of the memory in force (default 2); above 1.
    factor: Option<Checked<Factor>>,
    /// Cap in MB (default and Lambda maximum 10240).
    max_mb: Option<Checked<Bounded<LAMBDA_MEMORY_MIN_MB, LAMBDA_MEMORY_MAX_MB>>>,
}

impl MemoryParams {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::RaiseMemory {
            factor: optional(self.factor, 2.0, |f| f.0)?,
            max_mb: optional(self.max_mb, LAMBDA_MEMORY_MAX_MB as u32, |b| b.0 as u32)?,
        })
    }
}
