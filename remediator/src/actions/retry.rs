//! Retries of a failed execution: `redrive` (from the failed state, or a restart under
//! a deterministic name when Step Functions cannot redrive it) and `start-execution`.
//!
//! Idempotent: a redrive carries a client token derived from the incident, and a restart
//! uses a name derived from it, so Step Functions itself refuses a second one. A retry
//! due later than an invocation should wait becomes a durable EventBridge Scheduler
//! timer whose payload carries the event without the execution's input. A run cannot
//! be un-run: retries have no undo.

use std::time::Duration;

use crate::apply::{
    done, failed, refused, Done, ExecutionInfo, Executions, Redrive, Secret, Services, Start, StepResult, Timer,
    Timers, DEFERRED_RETRY,
};
use crate::event::{ExecutionArn, Signal};
use crate::incident::Incident;
use crate::plan::{restart_name, Refusal, Step, MAX_INLINE_DELAY};

/// What a redrive may call (a restart and a durable timer included).
pub const REDRIVE_PERMISSIONS: &[&str] = &[
    "states:RedriveExecution",
    "states:DescribeExecution",
    "states:StartExecution",
    "scheduler:CreateSchedule",
    "iam:PassRole",
];

/// What `start-execution` may call.
pub const START_PERMISSIONS: &[&str] = &["states:StartExecution", "states:DescribeExecution"];

/// `redrive {delay}`: the failed execution again.
pub(crate) async fn redrive(
    step: &Step,
    incident: &Incident,
    info: Option<&ExecutionInfo>,
    services: &Services<'_>,
    delay: &Duration,
) -> Done {
    let target = step.target.as_deref().unwrap_or_default();

    let Signal::Execution(change) = &incident.event.signal else {
        return refused(Refusal::NoTarget, "no execution");
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
        if let Some(stop) = services.preflight(step, target, None).await {
            return stop;
        }
        return defer(step, incident, services.timers, *delay).await;
    }
    if !delay.is_zero() {
        tokio::time::sleep(*delay).await;
    }
    // After the wait, not before it: a pause set meanwhile wins. The intent is journaled,
    // so that a takeover that finds the execution running again knows the redrive was ours.
    let intent = redrivable.then(|| serde_json::json!({"redrive_count": change.redrive_count}));
    if let Some(stop) = services.preflight(step, target, intent.as_ref()).await {
        return stop;
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

/// `start-execution {state_machine, input}`: a new execution, under a name derived from
/// the incident.
pub(crate) async fn start_execution(
    step: &Step,
    incident: &Incident,
    info: Option<&ExecutionInfo>,
    services: &Services<'_>,
    state_machine: &Option<String>,
    input: &Option<serde_json::Value>,
) -> Done {
    let target = step.target.as_deref().unwrap_or_default();

    let Signal::Execution(change) = &incident.event.signal else {
        return refused(Refusal::NoTarget, "no execution");
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
    if let Some(stop) = services.preflight(step, target, None).await {
        return stop;
    }
    restart(incident, &change.execution, &info, services.executions, "policy asks for a new execution").await
}

/// Schedules the retry with a durable timer instead of waiting for it.
async fn defer(step: &Step, incident: &Incident, timers: Option<&dyn Timers>, delay: std::time::Duration) -> Done {
    let Some(timers) = timers else {
        return refused(
            Refusal::NotApplicable,
            format!(
                "a delay of {} needs a durable timer: set REMEDIATOR_SELF_ARN and REMEDIATOR_SCHEDULER_ROLE_ARN (at most {} is waited in-process)",
                crate::policy::format_duration(delay),
                crate::policy::format_duration(MAX_INLINE_DELAY)
            ),
        );
    };
    let at = crate::clock::now() + delay.as_secs() as i64;
    let name = format!("remediator-{}", incident.key.digest(24));
    // The event without the execution's input (the retry reads it from Step Functions)
    // and with its cause redacted.
    let event = crate::redact::stored_event(&incident.event);
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
    // No second run: right before starting one, the original must still be where the
    // diagnosis left it (not running again, not redriven by someone meanwhile).
    match executions.describe(execution).await {
        Ok(now) if matches!(now.status.as_str(), "RUNNING" | "PENDING_REDRIVE" | "SUCCEEDED") => {
            return done(StepResult::Skipped, format!("the execution is {} now: someone else retried it", now.status))
        }
        Ok(now) if now.redrive_count > info.redrive_count => {
            return done(
                StepResult::Skipped,
                format!("the execution was redriven meanwhile (redrive {}): not restarted as well", now.redrive_count),
            )
        }
        Ok(_) => {}
        Err(e) => return failed("DescribeExecution (before restarting)", &e),
    }
    // The new run's name carries every attempt used so far, redrives included, so the
    // attempt limit holds across a chain of redrives and restarts.
    let name = restart_name(execution.name(), info.redrive_count, &incident.key.digest(16));
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
