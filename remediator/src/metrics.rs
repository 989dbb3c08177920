//! Metrics in CloudWatch Embedded Metric Format: one JSON log line per handled event,
//! which CloudWatch turns into metrics with no extra API call. Namespace `Remediator`,
//! dimensions `Policy` and `Outcome`: `Remediations` (count), `TimeToRemediate`
//! (seconds from the failure to the outcome) and `CircuitsOpened`.

use serde_json::{json, Value};

use crate::outcome::{Outcome, Resolution};

pub const NAMESPACE: &str = "Remediator";

/// The EMF line for an outcome, or `None` for events that were not incidents.
pub fn emf(outcome: &Outcome, failed_at: Option<i64>, now_ms: i64) -> Option<Value> {
    if matches!(outcome.resolution, Resolution::Ignored | Resolution::Duplicate | Resolution::InProgress) {
        return None;
    }
    let mut metrics = vec![json!({"Name": "Remediations", "Unit": "Count"})];
    let mut line = json!({
        "Policy": outcome.policy.as_deref().unwrap_or("none"),
        "Outcome": outcome.resolution.as_str(),
        "Remediations": 1,
        "incident": outcome.incident,
    });
    if let Some(t) = failed_at.filter(|_| outcome.resolution == Resolution::Remediated) {
        metrics.push(json!({"Name": "TimeToRemediate", "Unit": "Seconds"}));
        line["TimeToRemediate"] = json!((now_ms / 1000 - t).max(0));
    }
    if outcome.circuit_opened.is_some() {
        metrics.push(json!({"Name": "CircuitsOpened", "Unit": "Count"}));
        line["CircuitsOpened"] = json!(1);
    }
    line["_aws"] = json!({
        "Timestamp": now_ms,
        "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Policy", "Outcome"], []], "Metrics": metrics}]
    });
    Some(line)
}

/// The EMF line of a sweep: `AbandonedClaims` counts handlings that died after their
/// claim (taken over by this sweep), `UnrecoverableClaims` those that kept no event to
/// handle again. The template's alarm watches both.
pub fn sweep_emf(abandoned: usize, unrecoverable: usize, now_ms: i64) -> Value {
    json!({
        "AbandonedClaims": abandoned,
        "UnrecoverableClaims": unrecoverable,
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": [
                {"Name": "AbandonedClaims", "Unit": "Count"},
                {"Name": "UnrecoverableClaims", "Unit": "Count"},
            ]}]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(resolution: Resolution, note: Option<&str>) -> Outcome {
        let event =
            crate::event::Event::parse(r#"{"id":"e","source":"aws.states","detail-type":"x","detail":{}}"#).unwrap();
        Outcome {
            incident: Some("k".into()),
            resolution,
            policy: Some("redrive-transient-errors".into()),
            note: note.map(str::to_string),
            ..Outcome::for_event(&event)
        }
    }

    #[test]
    fn a_remediation_emits_count_and_time_to_remediate_by_policy_and_outcome() {
        let line = emf(&outcome(Resolution::Remediated, None), Some(1000), 1_030_000).unwrap();
        assert_eq!(line["Remediations"], 1);
        assert_eq!(line["TimeToRemediate"], 30);
        assert_eq!(line["Policy"], "redrive-transient-errors");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Remediator");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], json!(["Policy", "Outcome"]));
    }

    #[test]
    fn duplicates_emit_nothing_and_an_opened_circuit_is_counted() {
        assert!(emf(&outcome(Resolution::Duplicate, None), None, 0).is_none());
        let mut opened = outcome(Resolution::Failed, Some("anything"));
        opened.circuit_opened = Some("arn:aws:states:us-east-1:1:stateMachine:x".into());
        let line = emf(&opened, None, 0).unwrap();
        assert_eq!(line["CircuitsOpened"], 1);
        // A note that merely says so does not count: the typed field does.
        let line = emf(&outcome(Resolution::Failed, Some("circuit opened for x")), None, 0).unwrap();
        assert!(line.get("CircuitsOpened").is_none());
    }
}
