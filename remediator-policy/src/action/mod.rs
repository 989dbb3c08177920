//! Actions as policies write them. One file per action, named as in the `remediator`
//! crate's `actions/` (which holds what each does, its IAM permissions and its undo):
//! here are its parameters, as one type that deserializes from the policy file and
//! derives the action's JSON Schema, and the step they make. The split keeps the AWS SDK
//! out of this crate; adding an action touches its two files and the enum below.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

pub mod continue_rollback;
pub mod enable_rule;
pub mod notify;
pub mod raise;
pub mod restore_object;
pub mod retry;

pub use notify::Severity;
pub use restore_object::CopyBackWhen;

/// A remediation step and its parameters, checked: the set is closed, and each variant's
/// parameters are within their limits.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Redrive {
        delay: Duration,
    },
    StartExecution {
        state_machine: Option<String>,
        input: Option<serde_json::Value>,
    },
    RaiseTimeout {
        factor: f64,
        max_seconds: u32,
    },
    RaiseMemory {
        factor: f64,
        max_mb: u32,
    },
    /// `catch_up`: how many missed runs to start (0: none).
    EnableRule {
        rule: Option<String>,
        catch_up: u32,
    },
    RestoreObject {
        bucket: Option<String>,
        key: Option<String>,
        /// Empty: an object that exists is never overwritten.
        copy_back_when: Vec<CopyBackWhen>,
    },
    Notify {
        severity: Severity,
    },
    /// Continue a stack's failed rollback.
    ContinueRollback,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Redrive { .. } => "redrive",
            Action::StartExecution { .. } => "start-execution",
            Action::RaiseTimeout { .. } => "raise-timeout",
            Action::RaiseMemory { .. } => "raise-memory",
            Action::EnableRule { .. } => "enable-rule",
            Action::RestoreObject { .. } => "restore-object",
            Action::Notify { .. } => "notify",
            Action::ContinueRollback => "continue-rollback",
        }
    }

    /// Whether the step changes AWS (and so is skipped in dry-run).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Action::Notify { .. })
    }
}

/// An action as written: its name alone (`- notify`), or a one-key mapping of its name to
/// its parameters (`- notify: {severity: critical}`). Messages call it an "action".
#[derive(Debug, Deserialize)]
#[serde(rename = "action", rename_all = "kebab-case")]
pub(crate) enum ActionDoc {
    Redrive(retry::RedriveParams),
    StartExecution(retry::StartParams),
    RaiseTimeout(raise::TimeoutParams),
    RaiseMemory(raise::MemoryParams),
    EnableRule(enable_rule::Params),
    RestoreObject(restore_object::Params),
    Notify(notify::Params),
    ContinueRollback(continue_rollback::Params),
}

impl ActionDoc {
    /// The checked step; `None` if a parameter failed (its error is already recorded).
    pub(crate) fn into_action(self) -> Option<Action> {
        match self {
            ActionDoc::Redrive(p) => p.into_action(),
            ActionDoc::StartExecution(p) => p.into_action(),
            ActionDoc::RaiseTimeout(p) => p.into_action(),
            ActionDoc::RaiseMemory(p) => p.into_action(),
            ActionDoc::EnableRule(p) => p.into_action(),
            ActionDoc::RestoreObject(p) => p.into_action(),
            ActionDoc::Notify(p) => p.into_action(),
            ActionDoc::ContinueRollback(p) => p.into_action(),
        }
    }

    /// Each action's name with the schema of its parameters, in the enum's order.
    fn parameters(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
        let mut schemas = vec![
            generator.subschema_for::<retry::RedriveParams>(),
            generator.subschema_for::<retry::StartParams>(),
            generator.subschema_for::<raise::TimeoutParams>(),
            generator.subschema_for::<raise::MemoryParams>(),
            generator.subschema_for::<enable_rule::Params>(),
            generator.subschema_for::<restore_object::Params>(),
            generator.subschema_for::<notify::Params>(),
            generator.subschema_for::<continue_rollback::Params>(),
        ];
        let names = action_names();
        assert_eq!(names.len(), schemas.len(), "one parameter schema per action");
        names.iter().map(|n| (*n, schemas.remove(0))).collect()
    }
}

/// The action names a policy may use: serde's own list, read from [`ActionDoc`].
pub fn action_names() -> &'static [&'static str] {
    crate::de::variant_names::<ActionDoc>()
}

impl JsonSchema for ActionDoc {
    fn schema_name() -> Cow<'static, str> {
        "Action".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let with_parameters: Vec<Schema> = ActionDoc::parameters(generator)
            .into_iter()
            .map(|(name, params)| {
                json_schema!({
                    "type": "object",
                    "properties": {name: params},
                    "required": [name],
                    "additionalProperties": false,
                })
            })
            .collect();
        json_schema!({
            "description": "A step: an action's name, or a one-key mapping of the name to its parameters.",
            "anyOf": [
                {"type": "string", "enum": action_names()},
                {"oneOf": with_parameters},
            ],
        })
    }
}
