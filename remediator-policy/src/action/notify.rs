//! `notify`: send the incident's summary at a severity. Sending is in `remediator`'s
//! `actions/notify.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Action;
use crate::de::{optional, Checked};

/// How hard a notification should hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize, JsonSchema)]
#[serde(rename = "severity", rename_all = "lowercase")]
#[schemars(rename = "Severity")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Send the summary now, at this severity.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "NotifyParams")]
pub struct Params {
    /// Default: warning.
    severity: Option<Checked<Severity>>,
}

impl Params {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::Notify { severity: optional(self.severity, Severity::Warning, |s| s)? })
    }
}
