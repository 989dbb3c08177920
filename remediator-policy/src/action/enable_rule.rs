//! `enable-rule`: re-enable a disabled EventBridge rule. What it does, its IAM
//! permissions and its undo are in `remediator`'s `actions/enable_rule.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Action;
use crate::de::{optional, Checked};

/// Enable the rule again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EnableRuleParams")]
pub struct Params {
    /// Default: the rule named by the event.
    rule: Option<Checked<String>>,
}

impl Params {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::EnableRule { rule: optional(self.rule, None, Some)? })
    }
}
