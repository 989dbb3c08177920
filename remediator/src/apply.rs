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
use crate::event::{parse_timestamp, ExecutionArn, Signal};
use crate::incident::Incident;
use crate::plan::{restart_name, split_object_arn, Disposition, Plan, Step, MAX_INLINE_DELAY};
use crate::policy::Action;
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
}

/// EventBridge rules.
#[async_trait]
pub trait Rules: Send + Sync {
    async fn describe(&self, name: &str) -> Result<RuleInfo, AwsError>;
    async fn enable(&self, name: &str) -> Result<(), AwsError>;
    async fn disable(&self, name: &str) -> Result<(), AwsError>;
}

/// One version (or delete marker) of an S3 object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectVersion {
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub last_modified: Option<i64>,
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
}

/// Changes remediator made to a target, recorded so that concurrent and later
/// incidents of one burst do not repeat them: the first to claim "change C of target T
/// from value V" makes it; the others find it claimed.
#[async_trait]
pub trait ChangeLocks: Send + Sync {
    async fn claim_change(&self, target: &str, change: &str, from: &str, incident: &str) -> Result<bool, AwsError>;
    /// When remediator last changed `change` of `target` (Unix seconds), if ever.
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

/// The detail-type of the payload a timer delivers.
pub const DEFERRED_RETRY: &str = "Deferred Retry";

/// The AWS capabilities `apply` uses.
pub struct Services<'a> {
    pub executions: &'a dyn Executions,
    pub functions: &'a dyn FunctionSettings,
    pub rules: &'a dyn Rules,
    pub objects: &'a dyn ObjectVersions,
    pub locks: &'a dyn ChangeLocks,
    /// `None` when no timer is configured: retries due later than a Lambda should wait
    /// are then refused.
    pub timers: Option<&'a dyn Timers>,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepResult {
    Done,
    WouldHave,
    Refused,
    Skipped,
    Failed,
}

/// One step's outcome, as recorded and reported.
#[derive(Clone, Debug, Serialize)]
pub struct StepOutcome {
    pub policy: String,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub result: StepResult,
    pub detail: String,
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
struct Done {
    result: StepResult,
    detail: String,
    before: Option<Value>,
    short: Option<String>,
    follow_up: Option<String>,
}

fn done(result: StepResult, detail: impl Into<String>) -> Done {
    Done { result, detail: detail.into(), before: None, short: None, follow_up: None }
}

fn failed(what: &str, e: &AwsError) -> Done {
    done(StepResult::Failed, format!("{what} failed: {}", redact::text(&e.to_string())))
}

/// Applies a plan step by step. After a failed or refused mutating step the remaining
/// mutating steps are skipped (a raise that failed must not be followed by a redrive).
pub async fn apply(
    plan: &Plan,
    incident: &Incident,
    info: Option<&ExecutionInfo>,
    services: &Services<'_>,
) -> Vec<StepOutcome> {
    let mut outcomes = Vec::with_capacity(plan.steps.len());
    let mut blocked: Option<String> = None;
    for step in &plan.steps {
        let mut out = StepOutcome {
            policy: step.policy.clone(),
            action: step.action.name(),
            target: step.target.clone(),
            result: StepResult::Done,
            detail: String::new(),
            attempt: step.attempt.map(|(n, max)| format!("{n} of {max}")),
            before: None,
            short: None,
            follow_up: None,
        };
        match (&step.disposition, &blocked) {
            (Disposition::Refuse(reason), _) => {
                out.result = StepResult::Refused;
                out.detail = reason.clone();
            }
            (Disposition::Act, Some(reason)) if step.action.is_mutating() => {
                out.result = StepResult::Skipped;
                out.detail = format!("not attempted: {reason}");
            }
            (Disposition::Act, _) => {
                let d = run(step, incident, info, services).await;
                out.result = d.result;
                out.detail = d.detail;
                out.before = d.before;
                out.short = d.short;
                out.follow_up = d.follow_up;
            }
        }
        if step.action.is_mutating() && matches!(out.result, StepResult::Failed | StepResult::Refused) {
            let how = if out.result == StepResult::Failed { "failed" } else { "refused" };
            blocked.get_or_insert_with(|| format!("an earlier `{}` step was {how}", out.action));
        }
        outcomes.push(out);
    }
    outcomes
}

async fn run(step: &Step, incident: &Incident, info: Option<&ExecutionInfo>, services: &Services<'_>) -> Done {
    let target = step.target.as_deref().unwrap_or_default();
    match &step.action {
        Action::Notify { severity } => done(StepResult::Done, format!("summary sent ({})", severity.as_str())),
        Action::Redrive { delay } => {
            let Signal::Execution(change) = &incident.event.signal else {
                return done(StepResult::Refused, "no execution");
            };
            let info = info.cloned().unwrap_or_default();
            if matches!(info.status.as_str(), "RUNNING" | "SUCCEEDED" | "PENDING_REDRIVE") {
                return done(
                    StepResult::Skipped,
                    format!("the execution is {} now: someone else already retried it", info.status),
                );
            }
            let redrivable = info.redrive_status.as_deref() == Some("REDRIVABLE");
            if step.dry_run {
                let how = if redrivable { "redrive the execution" } else { "restart the execution under a new name" };
                return done(StepResult::WouldHave, format!("would {how}"));
            }
            if *delay > MAX_INLINE_DELAY {
                return defer(step, incident, services.timers, *delay).await;
            }
            if !delay.is_zero() {
                tokio::time::sleep(*delay).await;
            }
            let token = format!("remediator-{}", incident.key.digest(32));
            let why_restart = if redrivable {
                match services.executions.redrive(&change.execution, &token).await {
                    Ok(Redrive::Redriven) => {
                        return Done {
                            short: Some("redriven".into()),
                            follow_up: Some(format!("{}#{}", change.execution, change.redrive_count + 1)),
                            ..done(StepResult::Done, "redriven")
                        }
                    }
                    Ok(Redrive::NotRedrivable(reason)) => format!("not redrivable: {reason}"),
                    Err(e) => return failed("RedriveExecution", &e),
                }
            } else {
                match (&info.redrive_status, &info.redrive_status_reason) {
                    (Some(s), Some(r)) => format!("{s}: {r}"),
                    (Some(s), None) => s.clone(),
                    (None, _) => "DescribeExecution reported no redrive status".into(),
                }
            };
            restart(incident, &change.execution, &info, services.executions, &why_restart).await
        }
        Action::StartExecution { state_machine, input } => {
            let Signal::Execution(change) = &incident.event.signal else {
                return done(StepResult::Refused, "no execution");
            };
            if step.dry_run {
                return done(StepResult::WouldHave, "would start a new execution");
            }
            let mut info = info.cloned().unwrap_or_default();
            if let Some(sm) = state_machine {
                info.state_machine_arn = sm.clone();
            }
            if let Some(input) = input {
                info.input = Some(Secret(input.to_string()));
            }
            restart(incident, &change.execution, &info, services.executions, "policy asks for a new execution").await
        }
        Action::RaiseTimeout { factor, max_seconds } => {
            raise(step, incident, services, target, Kind::Timeout, *factor, *max_seconds).await
        }
        Action::RaiseMemory { factor, max_mb } => {
            raise(step, incident, services, target, Kind::Memory, *factor, *max_mb).await
        }
        Action::EnableRule { .. } => enable_rule(step, services.rules, target).await,
        Action::RestoreObject { .. } => restore_object(step, incident, services.objects, target).await,
    }
}

/// Schedules the retry with a durable timer instead of waiting for it.
async fn defer(step: &Step, incident: &Incident, timers: Option<&dyn Timers>, delay: std::time::Duration) -> Done {
    let Some(timers) = timers else {
        return done(
            StepResult::Refused,
            format!(
                "a delay of {} needs a durable timer: set REMEDIATOR_SELF_ARN and REMEDIATOR_SCHEDULER_ROLE_ARN (at most {} is waited in-process)",
                crate::policy::format_duration(delay),
                crate::policy::format_duration(MAX_INLINE_DELAY)
            ),
        );
    };
    let at = crate::handle::now() + delay.as_secs() as i64;
    let name = format!("remediator-{}", incident.key.digest(24));
    let mut event = incident.event.document.clone();
    if let Some(obj) = event.as_object_mut() {
        obj.remove("diagnosis");
    }
    let payload = serde_json::json!({
        "version": "0",
        "id": format!("deferred:{}", incident.key),
        "source": "remediator",
        "detail-type": DEFERRED_RETRY,
        "detail": {"incident": incident.key.as_str(), "policy": step.policy, "attempt": step.attempt, "event": event},
    });
    if step.dry_run {
        return done(StepResult::WouldHave, format!("would schedule the retry at {}", crate::guard::format_time(at)));
    }
    match timers.schedule(&name, at, &payload).await {
        Ok(timer) => {
            let how = if timer == Timer::Existing { "already scheduled" } else { "scheduled" };
            Done {
                short: Some(format!("retry at {}", &crate::guard::format_time(at)[11..16])),
                ..done(
                    StepResult::Done,
                    format!(
                        "retry {how} for {} (EventBridge Scheduler schedule {name})",
                        crate::guard::format_time(at)
                    ),
                )
            }
        }
        Err(e) => failed("CreateSchedule", &e),
    }
}

async fn restart(
    incident: &Incident,
    execution: &ExecutionArn,
    info: &ExecutionInfo,
    executions: &dyn Executions,
    why: &str,
) -> Done {
    let Some(input) = &info.input else {
        return done(StepResult::Failed, "cannot restart: the execution's input is not available");
    };
    let state_machine =
        if info.state_machine_arn.is_empty() { execution.state_machine_arn() } else { info.state_machine_arn.clone() };
    let name = restart_name(execution.name(), &incident.key.digest(16));
    let restarted = |arn: &str, detail: String| Done {
        short: Some("restarted".into()),
        follow_up: Some(format!("{arn}#0")),
        ..done(StepResult::Done, detail)
    };
    match executions.start(&state_machine, &name, input).await {
        Ok(Start::Started(arn)) => restarted(&arn, format!("restarted as {arn} ({why})")),
        Ok(Start::AlreadyStarted(arn)) => {
            // Ours only if it runs the same input: an earlier delivery, or an attempt whose
            // response was lost after Step Functions started it. Anything else is a name
            // collision, never to be taken for our restart.
            let Some(existing) = ExecutionArn::parse(&arn) else {
                return done(StepResult::Failed, format!("StartExecution answered with an unreadable ARN {arn}"));
            };
            match executions.describe(&existing).await {
                Ok(info) if info.input.as_ref().map(|i| i.0.as_str()) == Some(input.0.as_str()) => {
                    restarted(&arn, format!("already restarted as {arn} (an earlier attempt started it; same input)"))
                }
                Ok(_) => done(
                    StepResult::Failed,
                    format!("an execution named {arn} exists with a different input: not remediator's restart"),
                ),
                Err(e) => failed("DescribeExecution (confirming an existing restart)", &e),
            }
        }
        Err(e) => failed("StartExecution", &e),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Timeout,
    Memory,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Timeout => "timeout",
            Kind::Memory => "memory",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Kind::Timeout => "s",
            Kind::Memory => " MB",
        }
    }
    fn current(self, c: &FunctionConfig) -> u32 {
        match self {
            Kind::Timeout => c.timeout_seconds,
            Kind::Memory => c.memory_mb,
        }
    }
    fn setting(self, value: u32) -> Setting {
        match self {
            Kind::Timeout => Setting::Timeout(value),
            Kind::Memory => Setting::Memory(value),
        }
    }
}

/// How long to wait for `LastUpdateStatus` to leave `InProgress`.
const UPDATE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Raises a function's timeout or memory from the value in force when the failure
/// happened: if the function changed after the failure (an earlier incident of the same
/// burst raised it, or a person did), it is not raised again.
async fn raise(
    step: &Step,
    incident: &Incident,
    services: &Services<'_>,
    function: &str,
    kind: Kind,
    factor: f64,
    cap: u32,
) -> Done {
    let config = match services.functions.get(function).await {
        Ok(c) => c,
        Err(e) => return failed("GetFunctionConfiguration", &e),
    };
    let current = kind.current(&config);
    let unit = kind.unit();
    let before = Some(serde_json::json!({ kind.name(): current, "revision_id": config.revision_id }));
    // Changed at or after the failure (by a person: LastModified; by remediator for an
    // earlier incident of the same burst: its change record)? Then the failure happened
    // under the old value and the new one deserves its chance: no second raise.
    let failed_at = failure_time(incident);
    let ours = match services.locks.last_change(function, kind.name()).await {
        Ok(t) => t,
        Err(e) => return failed("reading earlier changes", &e),
    };
    if let Some(failed_at) = failed_at {
        if config.last_modified.into_iter().chain(ours).any(|changed| changed >= failed_at) {
            return done(
                StepResult::Done,
                format!("{} is {current}{unit}, changed since this failure: not raised again", kind.name()),
            );
        }
    }
    // Only the function's own timeout is helped by raising it (failure-modes.md row 1).
    if let (Kind::Timeout, Some(why)) =
        (kind, incident.diagnosis.as_ref().and_then(|d| d.refuse_timeout_raise(current)))
    {
        return done(StepResult::Refused, format!("timeout not raised: {why}"));
    }
    if current >= cap {
        return done(
            StepResult::Refused,
            format!("{} is already at the cap of {cap}{unit}: a person must look", kind.name()),
        );
    }
    let target = ((f64::from(current) * factor).ceil() as u32).min(cap).max(current + 1);
    let short = format!("{} {current}{unit}→{target}{unit}", kind.name());
    if step.dry_run {
        return Done {
            before,
            short: Some(short.clone()),
            ..done(StepResult::WouldHave, format!("would raise {short}"))
        };
    }
    match services.locks.claim_change(function, kind.name(), &current.to_string(), incident.key.as_str()).await {
        Ok(true) => {}
        Ok(false) => {
            return done(
                StepResult::Done,
                format!("another incident is raising the {} from {current}{unit}: not raised twice", kind.name()),
            )
        }
        Err(e) => return failed("claiming the change", &e),
    }
    match services.functions.update(function, kind.setting(target), config.revision_id.as_deref()).await {
        Ok(Update::Updated) => {}
        Ok(Update::Conflict) => {
            return done(
                StepResult::Done,
                "the function changed while remediator read it (RevisionId): left as the other change set it",
            )
        }
        Err(e) => return failed("UpdateFunctionConfiguration", &e),
    }
    // Wait until the update is in force before the next step (a redrive) uses it.
    let started = std::time::Instant::now();
    loop {
        match services.functions.get(function).await {
            Ok(c) if c.last_update_status.as_deref() == Some("Failed") => {
                return Done {
                    before,
                    ..done(StepResult::Failed, format!("the update to {target}{unit} failed (LastUpdateStatus Failed)"))
                }
            }
            Ok(c) if c.last_update_status.as_deref() != Some("InProgress") && kind.current(&c) == target => break,
            Ok(_) if started.elapsed() > UPDATE_WAIT => {
                return Done {
                    before,
                    ..done(
                        StepResult::Failed,
                        format!("the update to {target}{unit} did not finish within {}s", UPDATE_WAIT.as_secs()),
                    )
                }
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            Err(e) => return failed("GetFunctionConfiguration", &e),
        }
    }
    Done { before, short: Some(short.clone()), ..done(StepResult::Done, format!("raised {short}")) }
}

/// When the failure happened: the event's time (EventBridge stamps it at the change).
fn failure_time(incident: &Incident) -> Option<i64> {
    incident.event.time.as_deref().and_then(parse_timestamp)
}

/// Enables a rule only if it is disabled; rules managed by another service are reported.
async fn enable_rule(step: &Step, rules: &dyn Rules, arn: &str) -> Done {
    let name = arn.rsplit_once("rule/").map_or(arn, |(_, n)| n);
    // Rules on a custom bus: `rule/BUS/NAME`; EnableRule here covers the default bus.
    let info = match rules.describe(name).await {
        Ok(i) => i,
        Err(e) => return failed("DescribeRule", &e),
    };
    if let Some(service) = &info.managed_by {
        return done(StepResult::Refused, format!("rule {name} is managed by {service}: not touched"));
    }
    if info.state != "DISABLED" {
        return done(StepResult::Done, format!("rule {name} is {}: nothing to do", info.state));
    }
    let before = Some(serde_json::json!({"state": info.state}));
    if step.dry_run {
        return Done { before, ..done(StepResult::WouldHave, format!("would enable rule {name}")) };
    }
    if let Err(e) = rules.enable(name).await {
        return failed("EnableRule", &e);
    }
    match rules.describe(name).await {
        Ok(i) if i.state == "ENABLED" => {
            Done { before, short: Some("enabled".into()), ..done(StepResult::Done, format!("enabled rule {name}")) }
        }
        Ok(i) => {
            Done { before, ..done(StepResult::Failed, format!("rule {name} is still {} after EnableRule", i.state)) }
        }
        Err(e) => failed("DescribeRule", &e),
    }
}

/// Restores the newest earlier version of an object in a versioned bucket by removing
/// the delete marker that hides it; an object that exists is never overwritten.
async fn restore_object(step: &Step, incident: &Incident, objects: &dyn ObjectVersions, arn: &str) -> Done {
    let Some((bucket, key)) = split_object_arn(arn) else {
        return done(StepResult::Refused, format!("{arn} is not an S3 object"));
    };
    let versions = match objects.versions(bucket, key).await {
        Ok(v) => v,
        Err(e) => return failed("ListObjectVersions", &e),
    };
    // In a bucket that was never versioned every object's version id is "null", and a
    // deleted object is simply gone: there is nothing to restore from.
    if versions.iter().all(|v| v.version_id == "null") {
        return done(StepResult::Refused, format!("bucket {bucket} is not versioned: nothing to restore from"));
    }
    let Some(latest) = versions.first() else {
        return done(StepResult::Refused, format!("s3://{bucket}/{key} has no versions to restore"));
    };
    if !latest.delete_marker {
        let newer = match (latest.last_modified, failure_time(incident)) {
            (Some(m), Some(f)) if m > f => " (written after the incident)",
            _ => "",
        };
        return done(
            StepResult::Done,
            format!("s3://{bucket}/{key} exists (version {}){newer}: not overwritten", latest.version_id),
        );
    }
    let Some(previous) = versions.iter().find(|v| !v.delete_marker) else {
        return done(StepResult::Refused, format!("s3://{bucket}/{key} has only delete markers"));
    };
    let before = Some(serde_json::json!({"delete_marker": latest.version_id, "restored_version": previous.version_id}));
    if step.dry_run {
        return Done {
            before,
            ..done(
                StepResult::WouldHave,
                format!("would remove delete marker {} to restore version {}", latest.version_id, previous.version_id),
            )
        };
    }
    if let Err(e) = objects.delete_version(bucket, key, &latest.version_id).await {
        return failed("DeleteObject (delete marker)", &e);
    }
    match objects.head(bucket, key).await {
        Ok(Some(current)) => Done {
            before,
            short: Some("restored".into()),
            ..done(
                StepResult::Done,
                format!("restored s3://{bucket}/{key}: removed delete marker, version {current} is current"),
            )
        },
        Ok(None) => Done {
            before,
            ..done(StepResult::Failed, format!("s3://{bucket}/{key} is still missing after removing the delete marker"))
        },
        Err(e) => failed("HeadObject", &e),
    }
}
