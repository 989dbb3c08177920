//! The reconciliation sweep: Step Functions status-change events are delivered best
//! effort, so `remediator sweep` (run on a schedule) lists the executions of the
//! configured state machines that failed or timed out since the last sweep and feeds
//! each through the same handling as an event. Failures already handled are absorbed
//! by their incident key (execution ARN plus redrive count), so the sweep never acts
//! twice on one failure.
//!
//! It also takes over the claims of handlings that died (a timeout, out of memory, a
//! crash) whatever their source (executions, alarms, S3, CloudTrail, an approved plan):
//! each claim keeps its event, and a claim whose lease ran out is handled again from it.
//! And it expires the requests for approval whose time ran out (nothing is done; the
//! expiry is recorded and told).

use serde_json::{json, Value};

use crate::apply::{ExecutionInfo, Executions};
use crate::error::AwsError;
use crate::event::{ExecutionArn, SFN_SOURCE, SFN_STATUS_CHANGE};
use crate::guard::format_time;
use crate::handle::{HandleError, Handler, Invocation, Outcome};

/// The status-change event a failed execution would have produced (current shape;
/// without input or output, which the handler reads from Step Functions when needed).
pub fn status_event(execution: &ExecutionArn, info: &ExecutionInfo) -> Value {
    json!({
        "version": "0",
        "id": format!("sweep:{}:{}", execution, info.redrive_count),
        "detail-type": SFN_STATUS_CHANGE,
        "source": SFN_SOURCE,
        "account": execution.account(),
        "time": info.stop_date.map(format_time),
        "region": execution.region(),
        "resources": [execution.as_str()],
        "detail": {
            "executionArn": execution.as_str(),
            "stateMachineArn": info.state_machine_arn,
            "name": info.name,
            "status": info.status,
            "stopDate": info.stop_date.map(|s| s * 1000),
            "error": info.error,
            "cause": info.cause,
            "redriveCount": info.redrive_count,
            "redriveStatus": info.redrive_status,
            "inputDetails": {"included": false},
        },
        "remediator": {"sweep": true},
    })
}

/// The events of every execution of `state_machines` that failed since `since`.
pub async fn failed_since(
    executions: &dyn Executions,
    state_machines: &[String],
    since: i64,
) -> Result<Vec<Value>, AwsError> {
    let mut events = Vec::new();
    for sm in state_machines {
        // One state machine that cannot be listed (another account's, a denied or deleted
        // one) is logged and skipped: the others, the takeovers and the digests still run.
        let failed = match executions.list_failed(sm, since).await {
            Ok(failed) => failed,
            Err(e) if !e.is_retryable() => {
                tracing::error!(state_machine = %sm, error = %e, "cannot list its executions: skipped by this sweep");
                continue;
            }
            Err(e) => return Err(e),
        };
        for arn in failed {
            let Some(execution) = ExecutionArn::parse(&arn) else { continue };
            let info = executions.describe(&execution).await?;
            events.push(status_event(&execution, &info));
        }
    }
    Ok(events)
}

/// What one sweep did.
#[derive(Debug)]
pub struct Report {
    /// One entry per event handled: its outcome, or its error.
    pub handled: Vec<Result<Outcome, HandleError>>,
    /// Events that could not be handled (they are found again by the next sweep).
    pub failed: usize,
    /// Claims whose handling died (lease ran out before completion), taken over.
    pub abandoned: usize,
    /// Abandoned claims that kept no event to handle again (claimed before events were
    /// kept): reported, for a person.
    pub unrecoverable: Vec<String>,
    /// Digests sent, or why they were not.
    pub digests: Result<usize, String>,
}

/// The sweep: every failed execution of `state_machines` since `since`, and every claim
/// whose handling died, through the same handling as an event; then the digests due.
pub async fn run(
    handler: &Handler,
    state_machines: &[String],
    since: i64,
    inv: &Invocation,
) -> Result<Report, AwsError> {
    let mut report = Report { handled: Vec::new(), failed: 0, abandoned: 0, unrecoverable: Vec::new(), digests: Ok(0) };
    // Guard state an earlier version kept in the shared partition goes to its shards.
    match handler.guards.migrate().await {
        Ok(0) => {}
        Ok(moved) => tracing::info!(moved, "guard state moved to its targets' partitions"),
        Err(e) => tracing::warn!(error = %e, "guard state not moved yet; it is still read where it is"),
    }
    let mut events = failed_since(handler.clients.executions.as_ref(), state_machines, since).await?;
    for abandoned in handler.log.abandoned(crate::clock::now()).await? {
        report.abandoned += 1;
        tracing::warn!(incident = %abandoned.key, owner = %abandoned.owner, "a handling died after its claim: taking it over");
        match abandoned.event {
            Some(event) => events.push(event),
            None => report.unrecoverable.push(abandoned.key.to_string()),
        }
    }
    // Requests for approval whose time ran out: expired (nothing done), and told; and
    // approved plans whose handling was lost (a crash after the answer, a claim given
    // back, an approval from a place that could not reach the account): handled here
    // (a completed one is a duplicate). A scan that fails is logged: the rest goes on.
    let due = match handler.log.approvals_due(crate::clock::now()).await {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(error = %e, "sweep: approvals not read; the next sweep looks again");
            Vec::new()
        }
    };
    for approval in due {
        let handled = match approval.state {
            crate::approval::ApprovalState::Approved => {
                let at = approval.answered_at.unwrap_or_default();
                handler
                    .handle(crate::approval::granted_event(&approval.key, approval.account.as_deref(), at), inv)
                    .await
            }
            _ => {
                let answer = crate::approval::Answer {
                    incident: approval.key,
                    decision: crate::approval::Decision::Expire,
                    via: crate::approval::Via::Remediator,
                };
                handler.answer(answer, inv).await
            }
        };
        match &handled {
            Ok(o) if o.resolution == crate::outcome::Resolution::Duplicate => continue,
            Err(e) => {
                report.failed += 1;
                tracing::error!(error = %e, "sweep: an approval not handled");
            }
            Ok(_) => {}
        }
        report.handled.push(handled);
    }
    for event in events {
        let handled = handler.handle(event, inv).await;
        if let Err(e) = &handled {
            report.failed += 1;
            tracing::error!(error = %e, "sweep: event not handled");
        }
        report.handled.push(handled);
    }
    report.digests = handler.flush_digests(inv).await.map_err(|e| e.to_string());
    Ok(report)
}
