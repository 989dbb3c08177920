//! `notify {severity}`: the summary itself is the action. It changes nothing in AWS, so
//! it needs no permission of its own beyond publishing (a core permission) and has no
//! undo; its severity sets the summary's.

use crate::apply::{done, Done, StepResult};
use crate::policy::Severity;

/// A notification needs nothing beyond the core permissions.
pub const PERMISSIONS: &[&str] = &[];

pub(crate) fn notify(severity: &Severity) -> Done {
    done(StepResult::Done, format!("summary sent ({})", severity.as_str()))
}
