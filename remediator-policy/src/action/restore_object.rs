//! `restore-object`: bring a deleted S3 object back from its previous version. What it
//! does, its IAM permissions and its undo are in `remediator`'s `actions/restore_object.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Action;
use crate::de::{optional, Checked};

/// Restore the object's newest version before the deletion.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RestoreObjectParams")]
pub struct Params {
    /// Default: from the diagnosis or the event.
    bucket: Option<Checked<String>>,
    /// Default: from the diagnosis or the event.
    key: Option<Checked<String>>,
}

impl Params {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::RestoreObject { bucket: optional(self.bucket, None, Some)?, key: optional(self.key, None, Some)? })
    }
}
