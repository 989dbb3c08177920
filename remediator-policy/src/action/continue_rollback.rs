//! `continue-rollback`: continue the rollback of a pipeline stack stuck in
//! `UPDATE_ROLLBACK_FAILED` (the guide's "Rollback Deployment"). Opt-in: the shipped
//! policies only report failed deployments. What it does and its IAM permissions are in
//! `remediator`'s `actions/continue_rollback.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Action;

/// Continue the stack's failed rollback (`ContinueUpdateRollback`), with the stack's own
/// service role.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ContinueRollbackParams")]
pub struct Params {}

impl Params {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::ContinueRollback)
    }
}
