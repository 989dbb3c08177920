//! Applying a plan: the only place that changes AWS.
//!
//! Every step is idempotent so that a redelivered or resumed incident never doubles a
//! change: a redrive carries a client token derived from the incident, and a restart
//! uses a deterministic execution name, so Step Functions itself refuses a second start.
//! Dry-run walks every step up to the mutating call and reports what it would have done.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::diagnose::HistoryEvent;
use crate::error::AwsError;
use crate::error::ErrorKind;
use crate::event::ExecutionArn;
use crate::plan::{Refusal, Step};
use crate::redact;

/// Execution input: passed from one API call to another, never printed.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What `DescribeExecution` says, minus output.
#[derive(Clone, Debug, Default)]
pub struct ExecutionInfo {
    pub status: String,
    pub state_machine_arn: String,
    pub input: Option<Secret>,
    /// `REDRIVABLE`, `NOT_REDRIVABLE`, `REDRIVABLE_BY_MAP_RUN`, or unknown.
    pub redrive_status: Option<String>,
    pub redrive_status_reason: Option<String>,
    pub name: String,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub redrive_count: u32,
    /// Unix seconds.
    pub stop_date: Option<i64>,
}

/// Result of a `RedriveExecution` request.
#[derive(Clone, Debug, PartialEq)]
pub enum Redrive {
    Redriven,
    NotRedrivable(String),
}

/// Result of a `StartExecution` request under a deterministic name.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    Started(String),
    /// An execution of that name exists: an earlier delivery started it.
    AlreadyStarted(String),
}

/// Step Functions executions, as remediator needs them.
#[async_trait]
pub trait Executions: Send + Sync {
    async fn describe(&self, execution: &ExecutionArn) -> Result<ExecutionInfo, AwsError>;
    /// History events, newest first where the server honours it; enough to diagnose.
    async fn history(&self, execution: &ExecutionArn) -> Result<Vec<HistoryEvent>, AwsError>;
    async fn redrive(&self, execution: &ExecutionArn, client_token: &str) -> Result<Redrive, AwsError>;
    async fn start(&self, state_machine_arn: &str, name: &str, input: &Secret) -> Result<Start, AwsError>;
    /// Executions of a state machine that ended `FAILED` or `TIMED_OUT` at or after
    /// `since` (Unix seconds), newest first.
    async fn list_failed(&self, state_machine_arn: &str, since: i64) -> Result<Vec<String>, AwsError>;
    /// State machines whose name starts with `prefix`.
    async fn state_machines(&self, prefix: &str) -> Result<Vec<String>, AwsError>;
    /// Executions of a state machine that are running now.
    async fn running(&self, state_machine_arn: &str) -> Result<Vec<String>, AwsError>;
    /// Stops a running execution, with an error and a cause for its history.
    async fn stop(&self, execution: &str, error: &str, cause: &str) -> Result<(), AwsError>;
    /// When the newest execution of a state machine started (Unix seconds), if any.
    async fn latest_start(&self, state_machine_arn: &str) -> Result<Option<i64>, AwsError>;
    /// Whether a state machine is of the Express type (whose starts are not made unique
    /// by their names).
    async fn is_express(&self, state_machine_arn: &str) -> Result<bool, AwsError>;
}

/// A Lambda function's settings, as remediator changes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionConfig {
    pub timeout_seconds: u32,
    pub memory_mb: u32,
    pub revision_id: Option<String>,
    /// Unix seconds of the last change.
    pub last_modified: Option<i64>,
    /// `Successful`, `InProgress`, `Failed`.
    pub last_update_status: Option<String>,
}

/// Which setting to change, and to what.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Setting {
    Timeout(u32),
    Memory(u32),
}

/// Result of an update guarded by `RevisionId`.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    Updated,
    /// Someone changed the function since we read it.
    Conflict,
}

/// Lambda function configuration.
#[async_trait]
pub trait FunctionSettings: Send + Sync {
    async fn get(&self, function: &str) -> Result<FunctionConfig, AwsError>;
    async fn update(&self, function: &str, setting: Setting, revision_id: Option<&str>) -> Result<Update, AwsError>;
}

/// An EventBridge rule's state.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleInfo {
    pub state: String,
    pub managed_by: Option<String>,
    pub arn: Option<String>,
    /// `cron(...)` or `rate(...)`; `None` for a rule that matches events.
    pub schedule: Option<String>,
}

/// One target of a rule, with the input it is configured to receive.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleTarget {
    pub id: String,
    pub arn: String,
    pub input: crate::rule_input::TargetInput,
}

/// EventBridge rules.
#[async_trait]
pub trait Rules: Send + Sync {
    /// Rules whose name starts with `prefix` (default event bus): name and state.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, AwsError>;
    async fn describe(&self, name: &str) -> Result<RuleInfo, AwsError>;
    async fn enable(&self, name: &str) -> Result<(), AwsError>;
    async fn disable(&self, name: &str) -> Result<(), AwsError>;
    /// The rule's targets.
    async fn targets(&self, name: &str) -> Result<Vec<RuleTarget>, AwsError>;
}

/// The clients that act in one account: remediator's own, or a member account's (built
/// from the member role's credentials).
#[derive(Clone)]
pub struct Clients {
    pub executions: std::sync::Arc<dyn Executions>,
    pub functions: std::sync::Arc<dyn FunctionSettings>,
    pub rules: std::sync::Arc<dyn Rules>,
    pub objects: std::sync::Arc<dyn ObjectVersions>,
    pub stacks: std::sync::Arc<dyn Stacks>,
}

/// The member accounts of an organization, reached by assuming the member role.
#[async_trait]
pub trait MemberAccess: Send + Sync {
    /// Clients acting in `account` with the member role's credentials (cached per
    /// account, refreshed before they expire); an error when the role cannot be assumed.
    async fn clients(&self, account: &str) -> Result<std::sync::Arc<Clients>, AwsError>;
}

/// What `DescribeStacks` says of a stack, as remediator needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackInfo {
    pub status: String,
    /// The stack's service role, which CloudFormation uses to roll back.
    pub role_arn: Option<String>,
}

/// CloudFormation stacks.
#[async_trait]
pub trait Stacks: Send + Sync {
    /// The stack's events, newest first, at least back to the start of its latest
    /// operation (a bounded number of pages).
    async fn events(&self, stack_id: &str) -> Result<Vec<crate::deployment::StackEvent>, AwsError>;
    /// `None` when the stack does not exist.
    async fn describe(&self, stack_id: &str) -> Result<Option<StackInfo>, AwsError>;
    async fn continue_rollback(&self, stack_id: &str) -> Result<(), AwsError>;
}

/// One version (or delete marker) of an S3 object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectVersion {
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub last_modified: Option<i64>,
    /// Bytes (versions only).
    pub size: Option<i64>,
    /// The content's ETag (versions only): equal ETags, equal content.
    pub etag: Option<String>,
}

/// Versions of S3 objects.
#[async_trait]
pub trait ObjectVersions: Send + Sync {
    /// Versions and delete markers of exactly `key`, newest first.
    async fn versions(&self, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>, AwsError>;
    async fn delete_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<(), AwsError>;
    /// Deletes the current object (in a versioned bucket: adds a delete marker).
    async fn delete_current(&self, bucket: &str, key: &str) -> Result<(), AwsError>;
    /// The current version id, or `None` when the object does not exist.
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<String>, AwsError>;
    /// Copies a version of the object over the current one (the guide's `copy-object
    /// --copy-source BUCKET/KEY?versionId=...`), only while the current one has the ETag
    /// given (`If-Match`); the new version's id, or `None` when the current object
    /// changed since it was read.
    async fn copy_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        if_current_etag: Option<&str>,
    ) -> Result<Option<String>, AwsError>;
}

/// Changes remediator makes to a target, locked so that the concurrent incidents of one
/// burst do not repeat them: the first to claim "change C of target T from value V"
/// makes it; the others find it claimed. A lock belongs to the incident that took it
/// (its takeover may claim it again) and holds only for `hold` (a redeploy that puts the
/// old value back days later is raised again); only a change that was applied counts as
/// "changed since this failure" (a raise that crashed halfway does not).
#[async_trait]
pub trait ChangeLocks: Send + Sync {
    async fn claim_change(
        &self,
        target: &str,
        change: &str,
        from: &str,
        incident: &str,
        hold: std::time::Duration,
    ) -> Result<bool, AwsError>;
    /// Records that the claimed change was applied, to `to`.
    async fn applied_change(&self, target: &str, change: &str, from: &str, to: &str) -> Result<(), AwsError>;
    /// When remediator last applied `change` to `target` (Unix seconds), if ever.
    async fn last_change(&self, target: &str, change: &str) -> Result<Option<i64>, AwsError>;
}

/// Whether a timer was created or already existed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Timer {
    Created,
    Existing,
}

/// Durable one-time timers that invoke remediator later.
#[async_trait]
pub trait Timers: Send + Sync {
    async fn schedule(&self, name: &str, at: i64, payload: &Value) -> Result<Timer, AwsError>;
}

pub use crate::triage::DEFERRED_RETRY;

/// The last word before a change: called immediately before every mutating call, with
/// the before-image when there is one. The driver re-reads the pauses here (a person
/// may have paused remediator during a minute-long wait) and writes the before-image to
/// the incident's journal, so a crash right after the change loses neither.
#[async_trait]
pub trait Preflight: Send + Sync {
    async fn before_change(&self, step: &Step, target: &str, before: Option<&Value>) -> Result<Go, AwsError>;
}

/// What the preflight allows.
#[derive(Clone, Debug, PartialEq)]
pub enum Go {
    Proceed,
    Refuse(Refusal, String),
}

/// The AWS capabilities `apply` uses.
pub struct Services<'a> {
    pub executions: &'a dyn Executions,
    pub functions: &'a dyn FunctionSettings,
    pub rules: &'a dyn Rules,
    pub objects: &'a dyn ObjectVersions,
    pub stacks: &'a dyn Stacks,
    pub locks: &'a dyn ChangeLocks,
    /// `None` when no timer is configured: retries due later than a Lambda should wait
    /// are then refused.
    pub timers: Option<&'a dyn Timers>,
    /// `None` offline and in tests that do not need it: changes go ahead unchecked.
    pub preflight: Option<&'a dyn Preflight>,
}

impl Services<'_> {
    /// Runs the preflight for a change; `Some(done)` when it stops the step.
    pub(crate) async fn preflight(&self, step: &Step, target: &str, before: Option<&Value>) -> Option<Done> {
        let preflight = self.preflight?;
        match preflight.before_change(step, target, before).await {
            Ok(Go::Proceed) => None,
            Ok(Go::Refuse(refusal, reason)) => Some(refused(refusal, reason)),
            Err(e) => Some(failed("checking pauses and recording the before-image", &e)),
        }
    }
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepResult {
    Done,
    WouldHave,
    Refused,
    Skipped,
    Failed,
}

impl StepResult {
    pub fn as_str(self) -> &'static str {
        match self {
            StepResult::Done => "done",
            StepResult::WouldHave => "would-have",
            StepResult::Refused => "refused",
            StepResult::Skipped => "skipped",
            StepResult::Failed => "failed",
        }
    }
}

/// One step's outcome, as recorded and reported.
#[derive(Clone, Debug, Serialize)]
pub struct StepOutcome {
    pub policy: String,
    pub action: &'static str,
    /// Whether the action changes AWS (a notification does not).
    #[serde(skip)]
    pub mutating: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub result: StepResult,
    pub detail: String,
    /// For a refused step: why, as a kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// For a failed step: the kind of the AWS error, which decides whether the event is
    /// delivered again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// What the target looked like before the change (for `undo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// A few words for the summary's subject, e.g. `timeout 300s→450s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short: Option<String>,
    /// The run (execution ARN#redriveCount) whose end verifies this retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
}

/// A step's result before it is wrapped in a [`StepOutcome`].
pub(crate) struct Done {
    pub(crate) result: StepResult,
    pub(crate) detail: String,
    pub(crate) refusal: Option<Refusal>,
    pub(crate) error_kind: Option<ErrorKind>,
    pub(crate) before: Option<Value>,
    pub(crate) short: Option<String>,
    pub(crate) follow_up: Option<String>,
}

pub(crate) fn done(result: StepResult, detail: impl Into<String>) -> Done {
    Done { result, detail: detail.into(), refusal: None, error_kind: None, before: None, short: None, follow_up: None }
}

pub(crate) fn refused(refusal: Refusal, detail: impl Into<String>) -> Done {
    Done { refusal: Some(refusal), ..done(StepResult::Refused, detail) }
}

pub(crate) fn failed(what: &str, e: &AwsError) -> Done {
    Done {
        error_kind: Some(e.kind),
        ..done(StepResult::Failed, format!("{what} failed: {}", redact::text(&e.to_string())))
    }
}
