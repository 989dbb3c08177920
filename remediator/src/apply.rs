//! Applying a plan: the only place that changes AWS.
//!
//! Every step is idempotent so that a redelivered or resumed incident never doubles a
//! change: a redrive carries a client token derived from the incident, and a restart
//! uses a deterministic execution name, so Step Functions itself refuses a second start.
//! Dry-run walks every step up to the mutating call and reports what it would have done.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::diagnose::HistoryEvent;
use crate::error::AwsError;
use crate::event::{ExecutionArn, Signal};
use crate::incident::Incident;
use crate::plan::{restart_name, Disposition, Plan, Step};
use crate::policy::Action;

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
    async fn redrive(
        &self,
        execution: &ExecutionArn,
        client_token: &str,
    ) -> Result<Redrive, AwsError>;
    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &Secret,
    ) -> Result<Start, AwsError>;
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
}

/// Applies a plan step by step. After a failed or refused mutating step the remaining
/// mutating steps are skipped (a raise that failed must not be followed by a redrive).
pub async fn apply(
    plan: &Plan,
    incident: &Incident,
    info: Option<&ExecutionInfo>,
    executions: &dyn Executions,
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
                let (result, detail) = run(step, incident, info, executions).await;
                out.result = result;
                out.detail = detail;
            }
        }
        if step.action.is_mutating()
            && matches!(out.result, StepResult::Failed | StepResult::Refused)
        {
            blocked.get_or_insert_with(|| {
                format!(
                    "an earlier `{}` step was {}",
                    out.action,
                    if out.result == StepResult::Failed {
                        "failed"
                    } else {
                        "refused"
                    }
                )
            });
        }
        outcomes.push(out);
    }
    outcomes
}

async fn run(
    step: &Step,
    incident: &Incident,
    info: Option<&ExecutionInfo>,
    executions: &dyn Executions,
) -> (StepResult, String) {
    match &step.action {
        Action::Notify { severity } => (
            StepResult::Done,
            format!("summary sent ({})", severity.as_str()),
        ),
        Action::Redrive { delay } => {
            let Signal::Execution(change) = &incident.event.signal else {
                return (StepResult::Refused, "no execution".into());
            };
            let info = info.cloned().unwrap_or_default();
            if matches!(
                info.status.as_str(),
                "RUNNING" | "SUCCEEDED" | "PENDING_REDRIVE"
            ) {
                return (
                    StepResult::Skipped,
                    format!(
                        "the execution is {} now: someone else already retried it",
                        info.status
                    ),
                );
            }
            let token = format!("remediator-{}", incident.key.digest(32));
            let redrivable = info.redrive_status.as_deref() == Some("REDRIVABLE");
            if step.dry_run {
                let how = if redrivable {
                    "redrive the execution"
                } else {
                    "restart the execution under a new name"
                };
                return (StepResult::WouldHave, format!("would {how}"));
            }
            if !delay.is_zero() {
                tokio::time::sleep(*delay).await;
            }
            let why_restart = if redrivable {
                match executions.redrive(&change.execution, &token).await {
                    Ok(Redrive::Redriven) => return (StepResult::Done, "redriven".into()),
                    Ok(Redrive::NotRedrivable(reason)) => format!("not redrivable: {reason}"),
                    Err(e) => {
                        return (
                            StepResult::Failed,
                            format!(
                                "RedriveExecution failed: {}",
                                crate::redact::text(&e.to_string())
                            ),
                        )
                    }
                }
            } else {
                match (&info.redrive_status, &info.redrive_status_reason) {
                    (Some(s), Some(r)) => format!("{s}: {r}"),
                    (Some(s), None) => s.clone(),
                    (None, _) => "DescribeExecution reported no redrive status".into(),
                }
            };
            restart(incident, &change.execution, &info, executions, &why_restart).await
        }
        Action::StartExecution {
            state_machine,
            input,
        } => {
            let Signal::Execution(change) = &incident.event.signal else {
                return (StepResult::Refused, "no execution".into());
            };
            if step.dry_run {
                return (StepResult::WouldHave, "would start a new execution".into());
            }
            let mut info = info.cloned().unwrap_or_default();
            if let Some(sm) = state_machine {
                info.state_machine_arn = sm.clone();
            }
            if let Some(input) = input {
                info.input = Some(Secret(input.to_string()));
            }
            restart(
                incident,
                &change.execution,
                &info,
                executions,
                "policy asks for a new execution",
            )
            .await
        }
        other => (
            StepResult::Refused,
            format!("`{}` is not implemented", other.name()),
        ),
    }
}

async fn restart(
    incident: &Incident,
    execution: &ExecutionArn,
    info: &ExecutionInfo,
    executions: &dyn Executions,
    why: &str,
) -> (StepResult, String) {
    let Some(input) = &info.input else {
        return (
            StepResult::Failed,
            "cannot restart: the execution's input is not available".into(),
        );
    };
    let state_machine = if info.state_machine_arn.is_empty() {
        execution.state_machine_arn()
    } else {
        info.state_machine_arn.clone()
    };
    let name = restart_name(execution.name(), &incident.key.digest(16));
    match executions.start(&state_machine, &name, input).await {
        Ok(Start::Started(arn)) => (StepResult::Done, format!("restarted as {arn} ({why})")),
        Ok(Start::AlreadyStarted(arn)) => (
            StepResult::Done,
            format!("already restarted as {arn} by an earlier delivery"),
        ),
        Err(e) => (
            StepResult::Failed,
            format!(
                "StartExecution failed: {}",
                crate::redact::text(&e.to_string())
            ),
        ),
    }
}
