//! Diagnosis: which state failed, on which resource, with which error and cause.
//!
//! The status-change event says only that an execution failed; the execution history
//! says where and why. This module is pure: it reads a list of [`HistoryEvent`]s (from
//! the SDK in production, from a saved `GetExecutionHistory` response in `explain` and
//! `test`) and never sees execution input or output: only names, ARNs, errors and
//! causes are kept.
//!
//! Events are ordered by id, not by the order they arrive in (`reverseOrder` is a hint
//! some servers ignore).

use serde::Serialize;
use serde_json::Value;

use crate::event::{AlarmChange, ExecutionArn};

/// One history event, reduced to what diagnosis needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryEvent {
    pub id: i64,
    pub previous_event_id: i64,
    pub kind: String,
    /// Name of the state, for `*StateEntered` events.
    pub state: Option<String>,
    /// What a `TaskScheduled` / `LambdaFunctionScheduled` / `ActivityScheduled` event ran.
    pub scheduled: Option<Scheduled>,
    /// Error and cause of a failure event.
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// The resource a task ran. `parameters` is kept only to read the resource's name
/// (`FunctionName`, `Bucket`/`Key`) and is dropped by [`diagnose`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scheduled {
    pub resource_type: String,
    pub resource: String,
    pub parameters: Option<String>,
}

/// What remediator learned about a failure. Serialized into the incident document as
/// `diagnosis`, where policies match on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// For alarms: the alarm, its metric and dimensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<serde_json::Map<String, Value>>,
}

const TERMINAL: &[&str] = &["ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"];
const SCHEDULED: &[&str] = &["TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"];

fn is_failure_kind(kind: &str) -> bool {
    !TERMINAL.contains(&kind)
        && (kind.ends_with("Failed") || kind.ends_with("TimedOut"))
        && !kind.starts_with("Execution")
}

impl Diagnosis {
    /// Whether every field diagnosis can fill is filled (history paging can stop).
    pub fn is_complete(&self) -> bool {
        self.state.is_some() && self.error.is_some() && self.resource.is_some()
    }
}

/// Diagnoses an alarm: the resource comes from the metric's dimensions.
pub fn diagnose_alarm(alarm: &AlarmChange, region: &str, account: &str) -> Diagnosis {
    let dim = |k: &str| alarm.dimensions.get(k).and_then(Value::as_str);
    let resource = if let Some(f) = dim("FunctionName") {
        Some(format!("arn:aws:lambda:{region}:{account}:function:{f}"))
    } else if let Some(sm) = dim("StateMachineArn") {
        Some(sm.to_string())
    } else if let Some(rule) = dim("RuleName") {
        Some(format!("arn:aws:events:{region}:{account}:rule/{rule}"))
    } else if let Some(table) = dim("TableName") {
        Some(format!("arn:aws:dynamodb:{region}:{account}:table/{table}"))
    } else {
        dim("BucketName").map(|b| format!("arn:aws:s3:::{b}"))
    };
    let resource_type = resource.as_deref().and_then(|r| r.split(':').nth(2)).map(str::to_string);
    Diagnosis {
        resource,
        resource_type,
        alarm: Some(alarm.name.clone()),
        namespace: alarm.namespace.clone(),
        metric: alarm.metric.clone(),
        dimensions: Some(alarm.dimensions.clone()),
        ..Diagnosis::default()
    }
}

/// Diagnoses a failed execution from its history (any order).
pub fn diagnose(execution: &ExecutionArn, events: &[HistoryEvent]) -> Diagnosis {
    let mut sorted: Vec<&HistoryEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.id);
    let terminal = sorted.iter().rev().find(|e| TERMINAL.contains(&e.kind.as_str())).copied();
    let end = terminal.map_or(i64::MAX, |t| t.id);
    let before_end = || sorted.iter().copied().filter(move |e| e.id <= end);

    // The failing state is the last one entered before the end. A failure event after
    // it belongs to that state; one before it was retried or caught, and is not the cause.
    let entered = before_end().rfind(|e| e.kind.ends_with("StateEntered"));
    let from = entered.map_or(0, |e| e.id);
    let failure = before_end().rfind(|e| e.id > from && is_failure_kind(&e.kind));
    let scheduled = before_end()
        .filter(|e| e.id > from && e.id <= failure.map_or(end, |f| f.id))
        .filter(|e| SCHEDULED.contains(&e.kind.as_str()))
        .filter_map(|e| e.scheduled.as_ref())
        .next_back();

    let (error, cause) = match (failure, terminal) {
        (Some(f), _) if f.error.is_some() || f.cause.is_some() => (f.error.clone(), f.cause.clone()),
        (_, Some(t)) if t.kind == "ExecutionTimedOut" && t.error.is_none() => {
            (Some("States.Timeout".into()), t.cause.clone())
        }
        (_, Some(t)) => (t.error.clone(), t.cause.clone()),
        (Some(f), None) => (f.error.clone(), f.cause.clone()),
        (None, None) => (None, None),
    };
    let (resource_type, resource) = match scheduled {
        Some(s) => resolve_resource(execution, s),
        None => (None, None),
    };
    Diagnosis {
        state: entered.and_then(|e| e.state.clone()),
        resource,
        resource_type,
        error,
        cause,
        ..Diagnosis::default()
    }
}

/// Turns what a task scheduled into a resource ARN and type.
fn resolve_resource(execution: &ExecutionArn, s: &Scheduled) -> (Option<String>, Option<String>) {
    let params: Option<Value> = s.parameters.as_deref().and_then(|p| serde_json::from_str(p).ok());
    let param = |name: &str| params.as_ref().and_then(|p| p.get(name)).and_then(Value::as_str).map(str::to_string);
    let function_arn = |name: &str| {
        // `$LATEST` is the unqualified function; other qualifiers stay visible.
        let name = name.strip_suffix(":$LATEST").unwrap_or(name);
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            format!(
                "arn:{}:lambda:{}:{}:function:{}",
                execution.partition(),
                execution.region(),
                execution.account(),
                name
            )
        }
    };
    match (s.resource_type.as_str(), s.resource.as_str()) {
        // Direct function ARN (`"Resource": "arn:aws:lambda:...:function:f"`) and the
        // LambdaFunctionScheduled event of the old integration.
        (_, r) if r.starts_with("arn:") && r.contains(":lambda:") => (Some("lambda".into()), Some(r.to_string())),
        ("lambda", r) if r.starts_with("invoke") => {
            (Some("lambda".into()), param("FunctionName").map(|f| function_arn(&f)))
        }
        ("aws-sdk:s3" | "s3", _) => {
            let object = match (param("Bucket"), param("Key")) {
                (Some(b), Some(k)) => Some(format!("arn:{}:s3:::{b}/{k}", execution.partition())),
                (Some(b), None) => Some(format!("arn:{}:s3:::{b}", execution.partition())),
                _ => None,
            };
            (Some(s.resource_type.clone()), object)
        }
        (t, r) => (Some(t.to_string()), Some(format!("{t}:{r}"))),
    }
}

/// Reads the events of a `GetExecutionHistory` response (AWS JSON shape).
pub fn events_from_json(response: &Value) -> Result<Vec<HistoryEvent>, String> {
    let events = response
        .get("events")
        .and_then(Value::as_array)
        .ok_or("a GetExecutionHistory response has an `events` list")?;
    events.iter().map(event_from_json).collect()
}

fn event_from_json(v: &Value) -> Result<HistoryEvent, String> {
    let id = v.get("id").and_then(Value::as_i64).ok_or("history event without a numeric `id`")?;
    let kind = v.get("type").and_then(Value::as_str).ok_or("history event without `type`")?.to_string();
    let mut event = HistoryEvent {
        id,
        previous_event_id: v.get("previousEventId").and_then(Value::as_i64).unwrap_or(0),
        kind,
        ..HistoryEvent::default()
    };
    let s = |d: &Value, k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(obj) = v.as_object() else {
        return Ok(event);
    };
    for (key, details) in obj.iter().filter(|(k, _)| k.ends_with("EventDetails")) {
        if key == "stateEnteredEventDetails" {
            event.state = s(details, "name");
        } else if key.ends_with("ScheduledEventDetails") && SCHEDULED.contains(&event.kind.as_str()) {
            event.scheduled = Some(Scheduled {
                resource_type: s(details, "resourceType").unwrap_or_else(|| "lambda".into()),
                resource: s(details, "resource").unwrap_or_default(),
                parameters: s(details, "parameters"),
            });
        } else {
            event.error = event.error.or_else(|| s(details, "error"));
            event.cause = event.cause.or_else(|| s(details, "cause"));
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(name: &str) -> Vec<HistoryEvent> {
        let path = format!("{}/../tests/fixtures/history/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        events_from_json(&serde_json::from_str(&text).unwrap()).unwrap()
    }

    fn arn() -> ExecutionArn {
        ExecutionArn::parse("arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:run-1").unwrap()
    }

    #[test]
    fn a_lambda_invoke_task_throttled_names_the_state_function_and_error() {
        let d = diagnose(&arn(), &history("lambda-invoke-throttled.json"));
        assert_eq!(d.state.as_deref(), Some("PullApolloDelta"));
        assert_eq!(d.resource_type.as_deref(), Some("lambda"));
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-apollo-delta-pull")
        );
        assert_eq!(d.error.as_deref(), Some("Lambda.TooManyRequestsException"));
        assert!(d.cause.unwrap().contains("Rate Exceeded"));
    }

    #[test]
    fn a_direct_function_arn_that_timed_out_is_diagnosed_from_lambda_events() {
        let d = diagnose(&arn(), &history("lambda-direct-timeout.json"));
        assert_eq!(d.state.as_deref(), Some("PullFirecrawl"));
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-firecrawl-pull")
        );
        assert_eq!(d.error.as_deref(), Some("States.Timeout"));
    }

    #[test]
    fn a_fail_state_takes_error_and_cause_from_the_execution() {
        let d = diagnose(&arn(), &history("fail-state.json"));
        assert_eq!(d.state.as_deref(), Some("PullApolloDelta"));
        assert_eq!(d.resource, None);
        assert_eq!(d.error.as_deref(), Some("HTTPError"));
        assert_eq!(d.cause.as_deref(), Some("401 Unauthorized: Invalid API key"));
    }

    #[test]
    fn a_retried_failure_before_a_later_state_is_not_the_cause() {
        let d = diagnose(&arn(), &history("retried-then-fail-state.json"));
        assert_eq!(d.state.as_deref(), Some("NotifyFailure"));
        assert_eq!(d.error.as_deref(), Some("States.Runtime"));
        assert_eq!(d.resource, None);
    }

    #[test]
    fn an_s3_sdk_task_names_the_object() {
        let d = diagnose(&arn(), &history("s3-no-such-key.json"));
        assert_eq!(d.resource_type.as_deref(), Some("aws-sdk:s3"));
        assert_eq!(d.resource.as_deref(), Some("arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json"));
        assert_eq!(d.error.as_deref(), Some("S3.NoSuchKeyException"));
    }

    #[test]
    fn order_of_events_does_not_matter() {
        let mut events = history("lambda-invoke-throttled.json");
        let forward = diagnose(&arn(), &events);
        events.reverse();
        assert_eq!(diagnose(&arn(), &events), forward);
    }

    #[test]
    fn an_empty_history_diagnoses_nothing() {
        assert_eq!(diagnose(&arn(), &[]), Diagnosis::default());
    }
}
