//! Failed deployments: a CloudFormation "Stack Status Change" of a pipeline stack, and the
//! stack events that say which resource failed and why.
//!
//! The status change names the stack and its new status (`UPDATE_ROLLBACK_FAILED`,
//! `UPDATE_ROLLBACK_COMPLETE` after a failed update, ...) but not the cause: a person
//! runs `describe-stack-events` and scrolls for the first `*_FAILED` resource of the
//! operation. This module does that scroll, purely, over the events the adapter read
//! (newest first, as `DescribeStackEvents` returns them): the events of the latest
//! operation, from the stack's own `*_IN_PROGRESS` event that began it, and among them
//! the earliest resource failure that is not a cancellation caused by another one.
//! Reasons are kept as CloudFormation wrote them (they name resources, not data);
//! summaries redact them like every cause.

use serde_json::Value;

use crate::diagnose::Diagnosis;
use crate::event::Event;

/// The detail-type of a stack's status change.
pub const STACK_STATUS_CHANGE: &str = "CloudFormation Stack Status Change";
/// The resource type of the stack's own events.
const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// A stack status change, as the event says it.
#[derive(Clone, Debug, PartialEq)]
pub struct StackChange {
    /// The stack's ARN (`arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID`).
    pub stack_id: String,
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
}

impl StackChange {
    /// The status change an event carries, if it is one.
    pub fn of(event: &Event) -> Option<StackChange> {
        if event.source != "aws.cloudformation" || event.detail_type != STACK_STATUS_CHANGE {
            return None;
        }
        let doc = &event.document;
        let stack_id = doc.pointer("/detail/stack-id").and_then(Value::as_str)?.to_string();
        let name = stack_name(&stack_id)?.to_string();
        let status = doc.pointer("/detail/status-details/status").and_then(Value::as_str)?.to_string();
        let reason = doc
            .pointer("/detail/status-details/status-reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        Some(StackChange { stack_id, name, status, reason })
    }
}

/// `NAME` of `arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID`.
pub fn stack_name(stack_id: &str) -> Option<&str> {
    let (_, rest) = stack_id.split_once(":stack/")?;
    rest.split('/').next().filter(|n| !n.is_empty())
}

/// One stack event, reduced to what diagnosis needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackEvent {
    /// Unix seconds.
    pub timestamp: i64,
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Diagnoses a stack's failed operation from its events (newest first).
pub fn diagnose_stack(change: &StackChange, events: &[StackEvent]) -> Diagnosis {
    // The latest operation: everything down to (and including) the stack's own event
    // that began it (`UPDATE_IN_PROGRESS`, `CREATE_IN_PROGRESS`, ...), skipping the
    // rollback's own start (`UPDATE_ROLLBACK_IN_PROGRESS`), which is part of it.
    let mut operation: Vec<&StackEvent> = Vec::new();
    for e in events {
        operation.push(e);
        let begins = e.resource_type == STACK_TYPE
            && e.logical_id == change.name
            && e.status.ends_with("_IN_PROGRESS")
            && !e.status.contains("ROLLBACK")
            && !e.status.contains("CLEANUP");
        if begins {
            break;
        }
    }
    // Oldest first: the first resource that failed is the cause; the ones cancelled
    // because of it, and the stack's own failure, are consequences. A failed rollback is
    // stuck on the first resource its rollback could not put back (the one to fix, or
    // to skip, before continuing it), not on the update's first failure.
    operation.reverse();
    let from = if change.status.ends_with("ROLLBACK_FAILED") {
        operation
            .iter()
            // The latest attempt: after a continued rollback failed again, its own start.
            .rposition(|e| e.logical_id == change.name && e.status.contains("ROLLBACK_IN_PROGRESS"))
            .unwrap_or(0)
    } else {
        0
    };
    let is_cancel =
        |e: &&&StackEvent| e.reason.as_deref().is_some_and(|r| r.contains("cancelled") || r.contains("canceled"));
    // Nested stacks are resources too: only the stack's own events are left out.
    let failed = |e: &&&StackEvent| e.status.ends_with("_FAILED") && e.logical_id != change.name;
    let window = &operation[from..];
    let first = window.iter().filter(failed).find(|e| !is_cancel(e)).or_else(|| window.iter().find(failed)).copied();
    match first {
        Some(e) => Diagnosis {
            state: Some(e.logical_id.clone()),
            resource: e.physical_id.clone().filter(|p| !p.is_empty()).or_else(|| Some(e.logical_id.clone())),
            resource_type: Some(e.resource_type.clone()),
            error: Some(e.status.clone()),
            cause: e.reason.clone(),
            ..Diagnosis::default()
        },
        // No failed resource in the events read: the stack's own reason is all there is.
        None => Diagnosis {
            resource: Some(change.stack_id.clone()),
            resource_type: Some(STACK_TYPE.to_string()),
            error: Some(change.status.clone()),
            cause: change.reason.clone().or_else(|| Some("no failed resource in the stack's events".into())),
            ..Diagnosis::default()
        },
    }
}

/// The guide's commands ("Emergency Procedures → Rollback Deployment") for this stack,
/// each with when it applies.
pub fn commands(change: &StackChange, region: &str) -> Vec<String> {
    let stack = &change.name;
    let mut out = vec![format!("aws cloudformation describe-stack-events --stack-name {stack} --region {region}")];
    match change.status.as_str() {
        "UPDATE_ROLLBACK_FAILED" => out.push(format!(
            "aws cloudformation continue-update-rollback --stack-name {stack} --region {region}   # after fixing the resource above (or add --resources-to-skip LOGICAL_ID)"
        )),
        "UPDATE_IN_PROGRESS" | "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS" => {
            out.push(format!("aws cloudformation cancel-update-stack --stack-name {stack} --region {region}"))
        }
        _ => out.push(format!(
            "aws cloudformation describe-stacks --stack-name {stack} --region {region} --query 'Stacks[0].StackStatus'   # the stack is {}; redeploy the fixed template",
            change.status
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str =
        "arn:aws:cloudformation:us-east-1:123456789012:stack/thera-pipeline-prod/6a1e0f20-ce12-11ef-9a77-0affd1e3b8a1";

    fn change(status: &str) -> StackChange {
        let event = serde_json::json!({
            "version": "0", "id": "c1", "detail-type": STACK_STATUS_CHANGE, "source": "aws.cloudformation",
            "account": "123456789012", "time": "2026-11-29T10:00:00Z", "region": "us-east-1", "resources": [STACK],
            "detail": {"stack-id": STACK, "status-details": {"status": status, "status-reason": ""}}
        });
        StackChange::of(&Event::parse(&event.to_string()).unwrap()).unwrap()
    }

    fn ev(t: i64, logical: &str, kind: &str, status: &str, reason: Option<&str>) -> StackEvent {
        StackEvent {
            timestamp: t,
            logical_id: logical.into(),
            physical_id: Some(format!("phys-{logical}")),
            resource_type: kind.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn a_status_change_is_read_from_the_event() {
        let c = change("UPDATE_ROLLBACK_FAILED");
        assert_eq!(c.name, "thera-pipeline-prod");
        assert_eq!(c.stack_id, STACK);
        assert_eq!(c.reason, None);
        assert_eq!(stack_name("arn:aws:cloudformation:us-east-1:1:stack//x"), None);
    }

    #[test]
    fn the_first_resource_that_failed_in_the_latest_operation_is_the_cause() {
        let c = change("UPDATE_ROLLBACK_FAILED");
        let fn_type = "AWS::Lambda::Function";
        // Newest first, as DescribeStackEvents returns them.
        let events = [
            ev(
                9,
                "thera-pipeline-prod",
                STACK_TYPE,
                "UPDATE_ROLLBACK_FAILED",
                Some("The following resource(s) failed to update: [ApolloPull]."),
            ),
            ev(
                8,
                "ApolloPull",
                fn_type,
                "UPDATE_FAILED",
                Some("Resource handler returned message: \"Role is invalid\""),
            ),
            ev(
                7,
                "thera-pipeline-prod",
                STACK_TYPE,
                "UPDATE_ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed to update: [DailyRule]."),
            ),
            ev(6, "FirecrawlPull", fn_type, "UPDATE_FAILED", Some("Resource update cancelled")),
            ev(
                5,
                "DailyRule",
                "AWS::Events::Rule",
                "UPDATE_FAILED",
                Some("Parameter ScheduleExpression is not valid."),
            ),
            ev(4, "ApolloPull", fn_type, "UPDATE_COMPLETE", None),
            ev(3, "thera-pipeline-prod", STACK_TYPE, "UPDATE_IN_PROGRESS", Some("User Initiated")),
            // An older operation's failure is not this one's cause.
            ev(2, "OldBucket", "AWS::S3::Bucket", "CREATE_FAILED", Some("old")),
        ];
        // Stuck: the rollback could not put ApolloPull back; that is what to fix or skip.
        let d = diagnose_stack(&c, &events);
        assert_eq!(d.state.as_deref(), Some("ApolloPull"));
        assert_eq!(d.resource.as_deref(), Some("phys-ApolloPull"));
        assert_eq!(d.resource_type.as_deref(), Some("AWS::Lambda::Function"));
        assert_eq!(d.error.as_deref(), Some("UPDATE_FAILED"));
        assert_eq!(d.cause.as_deref(), Some("Resource handler returned message: \"Role is invalid\""));
        // Rolled back: the update's own first failure is the cause.
        let rolled_back = change("UPDATE_ROLLBACK_COMPLETE");
        let done = [
            ev(10, "thera-pipeline-prod", STACK_TYPE, "UPDATE_ROLLBACK_COMPLETE", None),
            ev(7, "thera-pipeline-prod", STACK_TYPE, "UPDATE_ROLLBACK_IN_PROGRESS", None),
            ev(6, "FirecrawlPull", fn_type, "UPDATE_FAILED", Some("Resource update cancelled")),
            ev(
                5,
                "DailyRule",
                "AWS::Events::Rule",
                "UPDATE_FAILED",
                Some("Parameter ScheduleExpression is not valid."),
            ),
            ev(3, "thera-pipeline-prod", STACK_TYPE, "UPDATE_IN_PROGRESS", Some("User Initiated")),
        ];
        let d = diagnose_stack(&rolled_back, &done);
        assert_eq!(d.state.as_deref(), Some("DailyRule"));
        assert_eq!(d.cause.as_deref(), Some("Parameter ScheduleExpression is not valid."));
        // A nested stack that failed is a resource like any other.
        let nested = [
            ev(5, "Networking", STACK_TYPE, "UPDATE_FAILED", Some("Embedded stack failed")),
            ev(3, "thera-pipeline-prod", STACK_TYPE, "UPDATE_IN_PROGRESS", None),
        ];
        assert_eq!(diagnose_stack(&rolled_back, &nested).state.as_deref(), Some("Networking"));
    }

    #[test]
    fn a_rollback_continued_and_failed_again_is_diagnosed_by_its_latest_attempt() {
        let c = change("UPDATE_ROLLBACK_FAILED");
        let fn_type = "AWS::Lambda::Function";
        let events = [
            ev(13, "thera-pipeline-prod", STACK_TYPE, "UPDATE_ROLLBACK_FAILED", None),
            ev(12, "FirecrawlPull", fn_type, "UPDATE_FAILED", Some("Function is in Pending state")),
            ev(11, "thera-pipeline-prod", STACK_TYPE, "UPDATE_ROLLBACK_IN_PROGRESS", None),
            ev(9, "thera-pipeline-prod", STACK_TYPE, "UPDATE_ROLLBACK_FAILED", None),
            ev(8, "ApolloPull", fn_type, "UPDATE_FAILED", Some("Role is invalid")),
            ev(7, "thera-pipeline-prod", STACK_TYPE, "UPDATE_ROLLBACK_IN_PROGRESS", None),
            ev(5, "DailyRule", "AWS::Events::Rule", "UPDATE_FAILED", Some("bad schedule")),
            ev(3, "thera-pipeline-prod", STACK_TYPE, "UPDATE_IN_PROGRESS", None),
        ];
        let d = diagnose_stack(&c, &events);
        assert_eq!(d.state.as_deref(), Some("FirecrawlPull"), "the resource the latest attempt is stuck on");
    }

    #[test]
    fn without_a_failed_resource_the_stacks_own_status_is_the_diagnosis() {
        let c = change("UPDATE_ROLLBACK_FAILED");
        let events = [ev(3, "thera-pipeline-prod", STACK_TYPE, "UPDATE_IN_PROGRESS", None)];
        let d = diagnose_stack(&c, &events);
        assert_eq!(d.resource.as_deref(), Some(STACK));
        assert_eq!(d.state, None, "no resource failed: the stack is the subject, not a state of it");
        assert_eq!(d.error.as_deref(), Some("UPDATE_ROLLBACK_FAILED"));
        assert_eq!(d.cause.as_deref(), Some("no failed resource in the stack's events"));
    }

    #[test]
    fn the_guides_commands_fit_the_status() {
        let failed = commands(&change("UPDATE_ROLLBACK_FAILED"), "us-east-1");
        assert_eq!(
            failed[0],
            "aws cloudformation describe-stack-events --stack-name thera-pipeline-prod --region us-east-1"
        );
        assert!(failed[1].starts_with("aws cloudformation continue-update-rollback --stack-name thera-pipeline-prod"));
        let stuck = commands(&change("UPDATE_IN_PROGRESS"), "us-east-1");
        assert!(stuck[1].starts_with("aws cloudformation cancel-update-stack --stack-name thera-pipeline-prod"));
        let rolled_back = commands(&change("UPDATE_ROLLBACK_COMPLETE"), "us-east-1");
        assert!(rolled_back[1].contains("the stack is UPDATE_ROLLBACK_COMPLETE"), "{}", rolled_back[1]);
    }
}
