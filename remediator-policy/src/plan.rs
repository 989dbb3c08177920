//! Planning: from the deciding policies to the concrete steps, with their guards.
//!
//! Pure: the plan depends only on the incident, the policies and configuration, so
//! `explain` shows exactly what `handle` would do. Each step names its target and is
//! either to be taken or refused with a reason a person can read ("attempts exhausted",
//! "nothing to redrive"). Refusals are outcomes, not errors.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::event::Signal;
use crate::incident::Incident;
use crate::policy::{Action, Limits, Policy};

/// Longest delay waited inside one invocation; longer ones need a durable timer.
pub const MAX_INLINE_DELAY: Duration = Duration::from_secs(60);
/// Suffix marker of executions remediator started: `<name>-rmd<generation>-<digest>`.
const RESTART_MARK: &str = "-rmd";
/// Step Functions' limit on execution names.
const MAX_EXECUTION_NAME: usize = 80;

/// What remediator will do about one incident.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// One action of one policy, on one target.
#[derive(Clone, Debug)]
pub struct Step {
    pub policy: String,
    pub action: Action,
    pub target: Option<String>,
    pub dry_run: bool,
    /// For execution retries: this attempt's number and the policy's limit.
    pub attempt: Option<(u32, u32)>,
    pub disposition: Disposition,
    /// The policy's limits (the guards apply them to changes other than retries).
    pub limits: Limits,
}

/// Whether a step is taken.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "disposition", rename_all = "kebab-case")]
pub enum Disposition {
    Act,
    /// Not taken: the kind decides what follows (the attempt limit, headlines,
    /// metrics); the reason is for a person.
    Refuse {
        refusal: Refusal,
        reason: String,
    },
}

/// Why a step is not taken. Control flow and counts read this, never the reason text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// A person paused remediator for this policy or target.
    Paused,
    /// The target is outside the allow-list.
    NotAllowed,
    /// Nothing to act on: the event, diagnosis or policy names no target.
    NoTarget,
    /// The target's circuit breaker is open.
    CircuitOpen,
    /// The policy's attempt limit is used up.
    AttemptsExhausted,
    /// The last change is within the policy's cooldown.
    CoolingDown,
    /// The target is in a state this action must not touch (a published version, a
    /// managed rule, an unversioned bucket, a value at its cap, no durable timer).
    NotApplicable,
}

impl Disposition {
    pub fn refuse(refusal: Refusal, reason: impl Into<String>) -> Disposition {
        Disposition::Refuse { refusal, reason: reason.into() }
    }
}

impl Plan {
    /// Whether any step would change AWS.
    pub fn acts(&self) -> bool {
        self.steps.iter().any(|s| s.disposition == Disposition::Act && s.action.is_mutating())
    }
}

/// Builds the plan for an incident from the policies that apply.
pub fn plan(incident: &Incident, applied: &[&Policy], global_dry_run: bool) -> Plan {
    let mut steps = Vec::new();
    for policy in applied {
        let first = steps.len();
        for action in &policy.actions {
            steps.push(step(incident, policy, action, global_dry_run || policy.dry_run));
        }
        // A policy whose retries are used up makes none of its changes: raising a
        // timeout that no retry will use only hides the failure.
        let exhausted = steps[first..].iter().find_map(|s| match &s.disposition {
            Disposition::Refuse { refusal: Refusal::AttemptsExhausted, reason } if s.attempt.is_some() => {
                Some(reason.clone())
            }
            _ => None,
        });
        if let Some(reason) = exhausted {
            for s in steps[first..].iter_mut().filter(|s| s.action.is_mutating()) {
                s.disposition = Disposition::refuse(Refusal::AttemptsExhausted, reason.clone());
            }
        }
    }
    Plan { steps }
}

fn step(incident: &Incident, policy: &Policy, action: &Action, dry_run: bool) -> Step {
    let mut step = Step {
        policy: policy.name.clone(),
        action: action.clone(),
        target: None,
        dry_run,
        attempt: None,
        disposition: Disposition::Act,
        limits: policy.limits.clone(),
    };
    let execution = match &incident.event.signal {
        Signal::Execution(change) => Some(change),
        _ => None,
    };
    match action {
        Action::Redrive { .. } | Action::StartExecution { .. } => {
            let Some(change) = execution else {
                step.disposition =
                    Disposition::refuse(Refusal::NoTarget, "the event names no Step Functions execution to retry");
                return step;
            };
            step.target = Some(match action {
                Action::StartExecution { state_machine: Some(sm), .. } => sm.clone(),
                _ => change.execution.to_string(),
            });
            let used = change.redrive_count + restart_generation(change.execution.name());
            let attempt = used + 1;
            step.attempt = Some((attempt, policy.limits.max_attempts));
            if attempt > policy.limits.max_attempts {
                step.disposition = Disposition::refuse(
                    Refusal::AttemptsExhausted,
                    format!("attempts exhausted: {used} of {} already used", policy.limits.max_attempts),
                );
            }
        }
        Action::Notify { .. } => step.target = Some("summary topic".into()),
        Action::RaiseTimeout { .. } | Action::RaiseMemory { .. } => {
            let function = incident
                .diagnosis
                .as_ref()
                .and_then(|d| d.resource.clone())
                .filter(|r| r.split(':').nth(2) == Some("lambda"));
            match function {
                // An ARN built from an event that named no account or region: refused,
                // never acted on in a guessed place.
                Some(f)
                    if f.split(':').nth(3).is_none_or(str::is_empty)
                        || f.split(':').nth(4).is_none_or(str::is_empty) =>
                {
                    step.disposition = Disposition::refuse(
                        Refusal::NoTarget,
                        format!("the event names no account or region: function {f} is not guessed"),
                    );
                }
                Some(f) => {
                    step.target = Some(f.clone());
                    if let Some(qualifier) = function_qualifier(&f) {
                        step.disposition = Disposition::refuse(Refusal::NotApplicable, format!(
                            "the task invoked the published version or alias `{qualifier}`: $LATEST is left alone, a person must publish the change"
                        ));
                    }
                }
                None => {
                    step.disposition = Disposition::refuse(Refusal::NoTarget, "the diagnosis names no Lambda function")
                }
            }
        }
        Action::EnableRule { rule, .. } => match rule_target(incident, rule.as_deref()) {
            Some(Ok(arn)) => step.target = Some(arn),
            Some(Err(why)) => step.disposition = Disposition::refuse(Refusal::NoTarget, why),
            None => {
                step.disposition =
                    Disposition::refuse(Refusal::NoTarget, "no rule named by the policy, the event or the alarm")
            }
        },
        Action::ContinueRollback => match crate::deployment::StackChange::of(&incident.event) {
            Some(change) => step.target = Some(change.stack_id),
            None => {
                step.disposition =
                    Disposition::refuse(Refusal::NoTarget, "the event is not a CloudFormation stack status change")
            }
        },
        Action::RestoreObject { bucket, key, .. } => match object_target(incident, bucket.as_deref(), key.as_deref()) {
            Some(arn) => step.target = Some(arn),
            None => {
                step.disposition = Disposition::refuse(
                    Refusal::NoTarget,
                    "no S3 object named by the policy, the event or the diagnosis",
                )
            }
        },
    }
    step
}

/// The qualifier of a function ARN (`...:function:name:qualifier`), other than `$LATEST`.
pub fn function_qualifier(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() == 8 && parts[7] != "$LATEST").then(|| parts[7])
}

/// When the rule the incident is about was disabled: the `DisableRule` call's own time
/// (`detail.eventTime`, else the event's), or `None` when the event is not that call (an
/// alarm on missing runs says when runs went missing, not when the rule stopped).
pub fn disabled_since(incident: &Incident) -> Option<i64> {
    let doc = &incident.event.document;
    if doc.pointer("/detail/eventName").and_then(Value::as_str) != Some("DisableRule") {
        return None;
    }
    doc.pointer("/detail/eventTime")
        .and_then(Value::as_str)
        .or(incident.event.time.as_deref())
        .and_then(crate::event::parse_timestamp)
}

/// The rule to enable: from the policy, a CloudTrail `DisableRule` call, or an alarm's
/// `RuleName` dimension; as an ARN in the event's account and region.
fn rule_target(incident: &Incident, rule: Option<&str>) -> Option<Result<String, String>> {
    let doc = &incident.event.document;
    let from_cloudtrail = || {
        if doc.pointer("/detail/eventName").and_then(Value::as_str) != Some("DisableRule") {
            return None;
        }
        doc.pointer("/detail/requestParameters/name").and_then(Value::as_str).map(str::to_string)
    };
    let from_alarm = || {
        incident
            .diagnosis
            .as_ref()
            .and_then(|d| d.dimensions.as_ref())
            .and_then(|d| d.get("RuleName"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = rule.map(str::to_string).or_else(from_cloudtrail).or_else(from_alarm)?;
    if name.starts_with("arn:") {
        return Some(Ok(name));
    }
    // Never a default: a rule is found in the event's own account and region, or not at
    // all (an allow-list would judge a guessed ARN, not the real rule).
    let (region, account) = match (incident.event.region.as_deref(), incident.event.account.as_deref()) {
        (Some(r), Some(a)) if !r.is_empty() && !a.is_empty() => (r, a),
        _ => return Some(Err(format!("the event names no account or region: rule {name} is not guessed"))),
    };
    Some(Ok(format!("arn:aws:events:{region}:{account}:rule/{name}")))
}

/// The object to restore: from the policy, an S3 event, or an S3 task's diagnosis.
fn object_target(incident: &Incident, bucket: Option<&str>, key: Option<&str>) -> Option<String> {
    let doc = &incident.event.document;
    let from_event = || {
        let b = doc.pointer("/detail/bucket/name").and_then(Value::as_str)?;
        let k = doc.pointer("/detail/object/key").and_then(Value::as_str)?;
        Some(format!("arn:aws:s3:::{b}/{k}"))
    };
    let from_diagnosis = || {
        let d = incident.diagnosis.as_ref()?;
        d.object.clone().or_else(|| d.resource.clone()).filter(|r| split_object_arn(r).is_some())
    };
    match (bucket, key) {
        (Some(b), Some(k)) => Some(format!("arn:aws:s3:::{b}/{k}")),
        _ => from_event().or_else(from_diagnosis),
    }
}

/// Splits an S3 object ARN into bucket and key.
pub fn split_object_arn(arn: &str) -> Option<(&str, &str)> {
    arn.strip_prefix("arn:aws:s3:::")?.split_once('/')
}

/// How many times remediator has restarted this execution's lineage: the generation
/// encoded in names it gave (`<name>-rmd<generation>-<digest>`), 0 for others.
pub fn restart_generation(name: &str) -> u32 {
    parse_restart(name).map_or(0, |(_, generation)| generation)
}

fn parse_restart(name: &str) -> Option<(&str, u32)> {
    let (head, digest) = name.rsplit_once('-')?;
    if digest.len() != 8 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let at = head.rfind(RESTART_MARK)?;
    let generation: u32 = head[at + RESTART_MARK.len()..].parse().ok()?;
    Some((&head[..at], generation))
}

/// The name of the execution that restarts `name` for the incident with `digest`: the
/// same for every delivery of one incident (so Step Functions refuses a second start),
/// one generation more than `name`, and within the 80-character limit.
/// The generation is the number of attempts the lineage has used (restarts and this
/// execution's redrives) plus one, so that the limit counts both.
pub fn restart_name(name: &str, redrive_count: u32, digest: &str) -> String {
    let (base, generation) = parse_restart(name).unwrap_or((name, 0));
    let suffix = format!("{RESTART_MARK}{}-{}", generation + redrive_count + 1, &digest[..8.min(digest.len())]);
    let room = MAX_EXECUTION_NAME - suffix.len();
    let base: String = base.chars().take(room).collect();
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::policy::PolicySet;

    fn incident(name: &str, redrive_count: u32) -> Incident {
        let text = format!(
            r#"{{"id":"e","source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{{
            "executionArn":"arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:{name}",
            "status":"FAILED","redriveCount":{redrive_count}}}}}"#
        );
        Incident::new(Event::parse(&text).unwrap(), None)
    }

    fn policies(actions: &str) -> PolicySet {
        let text = format!("policies:\n  - {{name: p, match: {{source: [aws.states]}}, actions: {actions}, limits: {{max_attempts: 2}}}}\n");
        PolicySet::from_sources(&[("p.yaml".into(), text)]).unwrap()
    }

    #[test]
    fn a_first_failure_is_redriven_as_attempt_one() {
        let set = policies("[redrive]");
        let plan = plan(&incident("run-1", 0), &[&set.policies()[0]], false);
        assert_eq!(plan.steps[0].disposition, Disposition::Act);
        assert_eq!(plan.steps[0].attempt, Some((1, 2)));
        assert!(plan.acts());
    }

    #[test]
    fn redrive_is_refused_after_max_attempts_counting_redrives_and_restarts() {
        let set = policies("[redrive]");
        let p = &set.policies()[0];
        let by_redrives = plan(&incident("run-1", 2), &[p], false);
        assert!(
            matches!(&by_redrives.steps[0].disposition, Disposition::Refuse { refusal: Refusal::AttemptsExhausted, reason } if reason.contains("attempts exhausted: 2 of 2"))
        );
        let restarted = restart_name(&restart_name("run-1", 0, "aaaaaaaa"), 0, "bbbbbbbb");
        let by_restarts = plan(&incident(&restarted, 0), &[p], false);
        assert!(matches!(by_restarts.steps[0].disposition, Disposition::Refuse { .. }));
    }

    // Issue 10, item 3: a chain of redrives and restarts gets max_attempts in all.
    #[test]
    fn the_attempt_limit_holds_across_redrives_and_restarts_together() {
        let text =
            "policies:\n  - {name: p, match: {source: [aws.states]}, actions: [redrive], limits: {max_attempts: 3}}\n";
        let set = PolicySet::from_sources(&[("p.yaml".into(), text.into())]).unwrap();
        let p = &set.policies()[0];
        let mut attempts = 0;
        // Original run-1: redriven once (attempt 1 → run-1#1), then restarted when the
        // redrive was not possible, then that restart redriven, ...
        let (mut name, mut redrives) = ("run-1".to_string(), 0);
        for step in 0..10 {
            let planned = plan(&incident(&name, redrives), &[p], false);
            if planned.steps[0].disposition != Disposition::Act {
                break;
            }
            attempts += 1;
            if step % 2 == 0 {
                redrives += 1;
            } else {
                name = restart_name(&name, redrives, "0123456789abcdef");
                redrives = 0;
            }
        }
        assert_eq!(attempts, 3, "max_attempts: 3 in all");
    }

    #[test]
    fn long_delays_are_planned_and_left_to_a_durable_timer() {
        let set = policies("[{redrive: {delay: 5m}}]");
        let plan = plan(&incident("run-1", 0), &[&set.policies()[0]], false);
        assert_eq!(plan.steps[0].disposition, Disposition::Act);
        assert_eq!(plan.steps[0].action, Action::Redrive { delay: Duration::from_secs(300) });
    }

    #[test]
    fn restart_names_are_deterministic_bounded_and_count_generations() {
        let first = restart_name("run-1", 0, "0123456789abcdef");
        assert_eq!(first, "run-1-rmd1-01234567");
        assert_eq!(restart_name("run-1", 0, "0123456789abcdef"), first);
        assert_eq!(restart_generation(&first), 1);
        let second = restart_name(&first, 0, "fedcba9876543210");
        assert_eq!(second, "run-1-rmd2-fedcba98");
        assert_eq!(restart_name(&first, 2, "fedcba9876543210"), "run-1-rmd4-fedcba98", "redrives count too");
        assert_eq!(restart_generation("run-1"), 0);
        let long = "x".repeat(100);
        assert_eq!(restart_name(&long, 0, "0123456789abcdef").len(), 80);
    }

    #[test]
    fn non_execution_events_cannot_be_redriven() {
        let set = policies("[redrive, notify]");
        let event = Event::parse(r#"{"id":"1","source":"aws.s3","detail-type":"Object Deleted","detail":{}}"#).unwrap();
        let plan = plan(&Incident::new(event, None), &[&set.policies()[0]], false);
        assert!(matches!(plan.steps[0].disposition, Disposition::Refuse { .. }));
        assert_eq!(plan.steps[1].disposition, Disposition::Act);
    }

    // Issue 10, item 4: no account or region is never filled with a default.
    #[test]
    fn a_rule_in_an_event_without_account_or_region_is_refused_not_guessed() {
        let policy =
            crate::policy::PolicySet::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies")))
                .unwrap()
                .policies()
                .iter()
                .find(|p| p.actions.iter().any(|a| matches!(a, Action::EnableRule { .. })))
                .cloned()
                .unwrap();
        let event = |account: Option<&str>| {
            let mut doc = serde_json::json!({
                "id": "ct", "source": "aws.events", "detail-type": "AWS API Call via CloudTrail", "region": "us-east-1",
                "detail": {"eventName": "DisableRule", "requestParameters": {"name": "thera-pipeline-daily-rule"}}
            });
            if let Some(a) = account {
                doc["account"] = serde_json::json!(a);
            }
            Incident::new(crate::event::Event::from_value(doc).unwrap(), None)
        };
        let without = plan(&event(None), &[&policy], false);
        let step = without.steps.iter().find(|s| matches!(s.action, Action::EnableRule { .. })).unwrap();
        assert!(
            matches!(&step.disposition, Disposition::Refuse { refusal: Refusal::NoTarget, reason } if reason.contains("no account or region")),
            "{:?}",
            step.disposition
        );
        assert_eq!(step.target, None);
        let with = plan(&event(Some("123456789012")), &[&policy], false);
        let step = with.steps.iter().find(|s| matches!(s.action, Action::EnableRule { .. })).unwrap();
        assert_eq!(
            step.target.as_deref(),
            Some("arn:aws:events:us-east-1:123456789012:rule/thera-pipeline-daily-rule")
        );
    }
}
