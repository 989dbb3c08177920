//! `restore-object`: bring a deleted S3 object back from its previous version, or (when
//! the policy says when the current one is unusable) copy the previous version back over
//! it. What it does, its IAM permissions and its undo are in `remediator`'s
//! `actions/restore_object.rs`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Action;
use crate::de::{optional, Checked};

/// When an object that exists is unusable, so that its previous version is copied back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize, JsonSchema)]
#[serde(rename = "condition", rename_all = "kebab-case")]
#[schemars(rename = "CopyBackWhen")]
pub enum CopyBackWhen {
    /// The current version has no bytes.
    Empty,
    /// The failed run whose incident this is failed reading this object (the diagnosis
    /// names it).
    ReadFailed,
}

/// Restore the object's newest version before the deletion (or before the failure).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RestoreObjectParams")]
pub struct Params {
    /// Default: from the diagnosis or the event.
    bucket: Option<Checked<String>>,
    /// Default: from the diagnosis or the event.
    key: Option<Checked<String>>,
    /// When the object exists but is unusable, copy back its newest earlier version
    /// written before the failure (only in a versioned bucket; never over a version written
    /// after the failure). Default: never (an object that exists is not overwritten).
    copy_back_when: Option<Checked<Vec<CopyBackWhen>>>,
}

impl Params {
    pub(crate) fn into_action(self) -> Option<Action> {
        Some(Action::RestoreObject {
            bucket: optional(self.bucket, None, Some)?,
            key: optional(self.key, None, Some)?,
            copy_back_when: optional(self.copy_back_when, Vec::new(), |w| w)?,
        })
    }
}
