//! Triage: what kind of event is this, before anything is read from AWS?
//!
//! Pure, and shared by `handle` and `explain`, so that `explain` shows what `handle`
//! would do with the same event: a failure becomes an incident; the end of something
//! remediator watches (its own retry succeeding, an alarm back to `OK`) is a
//! verification; remediator's own timers are internal work; everything else, including
//! the CloudTrail record of remediator's own calls (the loop breaker), is ignored with a
//! reason.

use serde_json::Value;

use crate::decide::decide_applied;
use crate::event::{Event, ExecutionChange, Signal};
use crate::incident::IncidentKey;
use crate::policy::PolicySet;

/// The `detail-type` of remediator's own timer event for a retry due later.
pub const DEFERRED_RETRY: &str = "Deferred Retry";
/// The `detail-type` of remediator's own timer event for a digest whose window closed.
pub const DIGEST_DUE: &str = "Digest Due";
/// The `detail-type` of remediator's own event for a plan a person approved.
pub const APPROVAL_GRANTED: &str = "Approval Granted";

/// The source of remediator's own internal events (timers).
pub const OWN_SOURCE: &str = "remediator";

/// remediator's own work, delivered by its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Internal {
    /// A retry that was deferred past what an invocation may wait is due.
    DeferredRetry,
    /// A storm digest's window has closed.
    DigestDue,
    /// A person approved a plan: apply it (whether the approval stands is in the table).
    ApprovalGranted,
}

/// What an event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Triage {
    Internal(Internal),
    /// Maybe the end of something remediator watches: the key under which the watched
    /// run or alarm is recorded (whether it is watched is known only from the table).
    Verification {
        watched: String,
    },
    /// A failure, or an event some policy wants: an incident to handle.
    Incident,
    /// Nothing to do, and why.
    Ignore(String),
}

/// The session name remediator gives the member role it assumes in member accounts.
pub const MEMBER_SESSION: &str = "remediator";

/// Who remediator is, to recognise its own calls in CloudTrail.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The member role's name: its session [`MEMBER_SESSION`] in any account is
    /// remediator acting there.
    pub member_role: Option<String>,
    /// The role remediator runs as (`arn:aws:iam::ACCOUNT:role/NAME`); CloudTrail names
    /// the caller `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`.
    pub role_arn: Option<String>,
    /// The role session name (its Lambda function's name).
    pub session: Option<String>,
}

impl Identity {
    /// Whether a CloudTrail `userIdentity.arn` is remediator itself. The role decides
    /// when it is known (anyone can choose a session name); the session name alone only
    /// when no role is configured.
    pub fn is_caller(&self, caller: &str) -> bool {
        let Some((account_role, session)) = assumed_role(caller) else { return false };
        if self.member_role.as_deref() == Some(account_role.1) && session == MEMBER_SESSION {
            return true;
        }
        match (&self.role_arn, &self.session) {
            (Some(role), own_session) => {
                role_of(role).is_some_and(|r| r == account_role)
                    && own_session.as_deref().is_none_or(|own| own == session)
            }
            (None, Some(own)) => own == session,
            (None, None) => false,
        }
    }
}

/// `(account, role name)` and the session of an assumed-role ARN.
fn assumed_role(arn: &str) -> Option<((&str, &str), &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_arn, _partition, service, _region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if service != "sts" {
        return None;
    }
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, session) = rest.rsplit_once('/')?;
    Some(((account, role), session))
}

/// `(account, role name)` of a role ARN (paths dropped, as STS drops them).
fn role_of(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_arn, _partition, service, _region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if service != "iam" {
        return None;
    }
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    Some((account, name))
}

/// Triage of one event.
pub fn triage(event: &Event, policies: &PolicySet, me: &Identity) -> Triage {
    if event.source == OWN_SOURCE {
        return match event.detail_type.as_str() {
            DEFERRED_RETRY => Triage::Internal(Internal::DeferredRetry),
            DIGEST_DUE => Triage::Internal(Internal::DigestDue),
            APPROVAL_GRANTED => Triage::Internal(Internal::ApprovalGranted),
            other => Triage::Ignore(format!("remediator event `{other}` is not one it handles")),
        };
    }
    match &event.signal {
        Signal::Execution(change) => {
            if change.status == "SUCCEEDED" && is_retry(change) {
                return Triage::Verification { watched: IncidentKey::for_event(event).to_string() };
            }
            // An execution a person aborted is a human decision: retried only when a
            // policy asks for it explicitly (`status: [ABORTED]`).
            if change.status == "ABORTED" {
                if decide_applied(policies, &event.document).is_empty() {
                    return Triage::Ignore(
                        "the execution was ABORTED: a person's decision, not retried unless a policy matches status ABORTED"
                            .into(),
                    );
                }
                return Triage::Incident;
            }
            if !change.is_failure() {
                return Triage::Ignore(format!("execution status {}: nothing to heal", change.status));
            }
            Triage::Incident
        }
        Signal::Alarm(alarm) => {
            if alarm.state == "OK" && alarm.previous_state.as_deref() == Some("ALARM") {
                return Triage::Verification { watched: alarm_watch_key(event, alarm) };
            }
            if !alarm.is_failure() {
                return Triage::Ignore(format!(
                    "alarm {} is {}: only transitions into ALARM are acted on",
                    alarm.name, alarm.state
                ));
            }
            Triage::Incident
        }
        Signal::Other => {
            // The loop breaker: a CloudTrail call made by remediator itself is never a
            // failure to remediate.
            let caller = event.document.pointer("/detail/userIdentity/arn").and_then(Value::as_str).unwrap_or_default();
            if !caller.is_empty() && me.is_caller(caller) {
                return Triage::Ignore(format!("caused by remediator itself ({caller}): ignored"));
            }
            // CloudTrail is not a command channel: a call that failed changed nothing, and
            // a rule on another event bus is not the pipeline's schedule.
            if let Some(code) = event.document.pointer("/detail/errorCode").and_then(Value::as_str) {
                return Triage::Ignore(format!("the call failed ({code}): it changed nothing"));
            }
            if let Some(bus) = event.document.pointer("/detail/requestParameters/eventBusName").and_then(Value::as_str)
            {
                if !(bus == "default" || bus.ends_with(":event-bus/default")) {
                    return Triage::Ignore(format!("the call was on event bus {bus}, not the default bus"));
                }
            }
            // Only events some policy wants become incidents.
            if decide_applied(policies, &event.document).is_empty() {
                return Triage::Ignore("no policy matches this event".into());
            }
            Triage::Incident
        }
    }
}

/// The key under which an alarm's latest incident is watched for its return to OK: the
/// alarm's ARN (account, region and name), so that the same alarm deployed in every
/// account of an organization closes only its own account's incident.
pub fn alarm_watch_key(event: &Event, alarm: &crate::event::AlarmChange) -> String {
    match alarm.arn.as_deref().filter(|a| a.starts_with("arn:")) {
        Some(arn) => format!("alarm:{arn}"),
        None => format!(
            "alarm:{}:{}:{}",
            event.account.as_deref().unwrap_or_default(),
            event.region.as_deref().unwrap_or_default(),
            alarm.name
        ),
    }
}

/// Whether a run is one remediator may have made: a redrive or a named restart.
pub fn is_retry(change: &ExecutionChange) -> bool {
    change.redrive_count > 0 || crate::plan::restart_generation(change.execution.name()) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> PolicySet {
        crate::policy::PolicySet::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies")))
            .expect("bundled policies load")
    }

    fn event(json: Value) -> Event {
        Event::from_value(json).unwrap()
    }

    fn sfn(status: &str, name: &str, redrive_count: u32) -> Event {
        let arn = format!("arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:{name}");
        event(serde_json::json!({
            "id": "e1", "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "account": "123456789012", "region": "us-east-1", "time": "2026-11-29T09:00:00Z",
            "detail": {"executionArn": arn, "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:thera-pipeline-prod-daily",
                       "name": name, "status": status, "redriveCount": redrive_count}
        }))
    }

    fn disable_rule(caller: &str) -> Event {
        event(serde_json::json!({
            "id": "ct1", "source": "aws.events", "detail-type": "AWS API Call via CloudTrail",
            "account": "123456789012", "region": "us-east-1", "time": "2026-11-29T09:00:00Z",
            "detail": {"eventSource": "events.amazonaws.com", "eventName": "DisableRule",
                       "requestParameters": {"name": "thera-pipeline-daily-rule"},
                       "userIdentity": {"type": "AssumedRole", "arn": caller}}
        }))
    }

    #[test]
    fn events_are_triaged_without_aws() {
        let set = policies();
        let me = Identity {
            role_arn: Some("arn:aws:iam::123456789012:role/service/remediator-role".into()),
            session: Some("remediator".into()),
            member_role: None,
        };
        let cases: Vec<(&str, Event, Triage)> = vec![
            ("a failure", sfn("FAILED", "run-1", 0), Triage::Incident),
            ("a timeout", sfn("TIMED_OUT", "run-1", 0), Triage::Incident),
            (
                "an abort by a person",
                sfn("ABORTED", "run-1", 0),
                Triage::Ignore(
                    "the execution was ABORTED: a person's decision, not retried unless a policy matches status ABORTED"
                        .into(),
                ),
            ),
            ("a first run's success", sfn("SUCCEEDED", "run-1", 0), Triage::Ignore("execution status SUCCEEDED: nothing to heal".into())),
            (
                "a redriven run's success",
                sfn("SUCCEEDED", "run-1", 1),
                Triage::Verification {
                    watched: "arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:run-1#1".into(),
                },
            ),
            ("a person's DisableRule", disable_rule("arn:aws:sts::123456789012:assumed-role/ops/alice"), Triage::Incident),
            (
                "remediator's own call",
                disable_rule("arn:aws:sts::123456789012:assumed-role/remediator-role/remediator"),
                Triage::Ignore(
                    "caused by remediator itself (arn:aws:sts::123456789012:assumed-role/remediator-role/remediator): ignored"
                        .into(),
                ),
            ),
            (
                "another role that chose remediator's session name",
                disable_rule("arn:aws:sts::123456789012:assumed-role/ops/remediator"),
                Triage::Incident,
            ),
            (
                "remediator's role in another account",
                disable_rule("arn:aws:sts::999999999999:assumed-role/remediator-role/remediator"),
                Triage::Incident,
            ),
            (
                "a deferred retry",
                event(serde_json::json!({"id": "t", "source": "remediator", "detail-type": "Deferred Retry", "detail": {}})),
                Triage::Internal(Internal::DeferredRetry),
            ),
            (
                "a digest",
                event(serde_json::json!({"id": "t", "source": "remediator", "detail-type": "Digest Due", "detail": {}})),
                Triage::Internal(Internal::DigestDue),
            ),
        ];
        for (what, event, expected) in cases {
            assert_eq!(triage(&event, &set, &me), expected, "{what}");
        }
    }

    // Issue 10, item 7: CloudTrail is not a command channel.
    #[test]
    fn a_failed_call_or_another_event_bus_is_not_a_failure_to_remediate() {
        let set = policies();
        let me = Identity::default();
        let mut denied = disable_rule("arn:aws:sts::123456789012:assumed-role/ops/alice");
        denied.document["detail"]["errorCode"] = serde_json::json!("AccessDenied");
        assert_eq!(
            triage(&denied, &set, &me),
            Triage::Ignore("the call failed (AccessDenied): it changed nothing".into())
        );
        let mut other_bus = disable_rule("arn:aws:sts::123456789012:assumed-role/ops/alice");
        other_bus.document["detail"]["requestParameters"]["eventBusName"] = serde_json::json!("partner-bus");
        assert!(matches!(triage(&other_bus, &set, &me), Triage::Ignore(why) if why.contains("partner-bus")));
        let mut default_bus = disable_rule("arn:aws:sts::123456789012:assumed-role/ops/alice");
        default_bus.document["detail"]["requestParameters"]["eventBusName"] = serde_json::json!("default");
        assert_eq!(triage(&default_bus, &set, &me), Triage::Incident);
    }

    #[test]
    fn without_a_role_the_session_name_recognises_remediator() {
        let me = Identity { role_arn: None, session: Some("remediator".into()), member_role: None };
        assert!(me.is_caller("arn:aws:sts::1:assumed-role/any/remediator"));
        assert!(!me.is_caller("arn:aws:sts::1:assumed-role/any/other"));
        assert!(!me.is_caller("arn:aws:iam::1:user/remediator"));
        assert!(!Identity::default().is_caller("arn:aws:sts::1:assumed-role/any/remediator"));
    }

    #[test]
    fn the_same_alarm_in_two_accounts_is_watched_apart() {
        let alarm = |account: &str, arn: bool| {
            let mut e = serde_json::json!({
                "id": "a", "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
                "account": account, "region": "us-east-1", "time": "2026-11-29T09:00:00Z",
                "detail": {"alarmName": "thera-pipeline-errors", "state": {"value": "OK"}, "previousState": {"value": "ALARM"}}
            });
            if arn {
                e["resources"] =
                    serde_json::json!([format!("arn:aws:cloudwatch:us-east-1:{account}:alarm:thera-pipeline-errors")]);
            }
            event(e)
        };
        let key = |e: &Event| match &e.signal {
            Signal::Alarm(a) => alarm_watch_key(e, a),
            _ => unreachable!(),
        };
        for arn in [true, false] {
            let (a, b) = (alarm("111122223333", arn), alarm("444455556666", arn));
            assert_ne!(key(&a), key(&b), "with the ARN: {arn}");
            assert!(key(&a).contains("111122223333"), "{}", key(&a));
        }
    }

    #[test]
    fn the_member_role_in_any_account_under_remediators_session_is_remediator() {
        let me = Identity {
            role_arn: Some("arn:aws:iam::123456789012:role/remediator".into()),
            session: Some("fn".into()),
            member_role: Some("remediator-member".into()),
        };
        assert!(me.is_caller(&format!("arn:aws:sts::111122223333:assumed-role/remediator-member/{MEMBER_SESSION}")));
        // A person using the member role under another session is not remediator.
        assert!(!me.is_caller("arn:aws:sts::111122223333:assumed-role/remediator-member/maria"));
        assert!(!me.is_caller(&format!("arn:aws:sts::111122223333:assumed-role/other-role/{MEMBER_SESSION}")));
    }
}
