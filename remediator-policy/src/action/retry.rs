//! `redrive` and `start-execution`: run a failed Step Functions execution again. What
//! they do, their IAM permissions and their undo are in `remediator`'s `actions/retry.rs`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::Action;
use crate::de::{optional, Checked, Dur};

/// Redrive the failed execution from the state that failed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RedriveParams")]
pub struct RedriveParams {
    /// Wait before redriving (default 0s).
    delay: Option<Checked<Dur>>,
}

impl RedriveParams {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::Redrive { delay: optional(self.delay, Duration::ZERO, |d| d.0)? })
    }
}

/// Start a new execution.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StartExecutionParams")]
pub struct StartParams {
    /// Default: the failed execution's state machine.
    state_machine: Option<Checked<String>>,
    /// Default: the failed execution's input.
    input: Option<Checked<serde_json::Value>>,
}

impl StartParams {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::StartExecution {
            state_machine: optional(self.state_machine, None, Some)?,
            input: optional(self.input, None, Some)?,
        })
    }
}
