//! EventBridge events as remediator receives them, parsed once at the edge.
//!
//! An event is kept whole (policies match on any field of it) and, when it is a
//! Step Functions status change, also read into a typed [`ExecutionChange`]. Both the
//! 2022 shape (no `error`, `cause`, `redrive*` fields) and the current one are accepted;
//! unknown fields and unknown statuses are tolerated, because AWS adds both over time.
//! What is malformed is rejected here with a precise reason, before anything is written.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("event is not a JSON object")]
    NotAnObject,
    #[error("event has no `{0}` field: not an EventBridge event")]
    MissingField(&'static str),
    #[error("event field `{field}` is malformed: {source}")]
    Field {
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("Step Functions event field `detail.{0}` is missing or empty")]
    MissingDetail(&'static str),
    #[error("`detail.executionArn` is not a Step Functions execution ARN: {0}")]
    BadExecutionArn(String),
}

/// An EventBridge event: the envelope, the whole document, and what we recognised in it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub detail_type: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub time: Option<String>,
    /// The event exactly as received (policies match on it).
    pub document: Value,
    pub signal: Signal,
}

/// What the event tells remediator.
#[derive(Clone, Debug)]
pub enum Signal {
    /// A Step Functions execution changed status.
    Execution(ExecutionChange),
    /// Anything else: policies may still match it.
    Other,
}

/// A Step Functions "Execution Status Change" event's detail.
#[derive(Clone, Debug)]
pub struct ExecutionChange {
    pub execution: ExecutionArn,
    pub state_machine_arn: String,
    pub name: String,
    pub status: String,
    pub redrive_count: u32,
    pub redrive_status: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl ExecutionChange {
    /// `FAILED` and `TIMED_OUT` are failures remediator heals; others are not.
    pub fn is_failure(&self) -> bool {
        matches!(self.status.as_str(), "FAILED" | "TIMED_OUT")
    }
}

/// A Step Functions execution ARN:
/// `arn:PARTITION:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionArn {
    arn: String,
}

impl ExecutionArn {
    pub fn parse(arn: &str) -> Option<ExecutionArn> {
        let parts: Vec<&str> = arn.splitn(8, ':').collect();
        let ok = parts.len() == 8
            && parts[0] == "arn"
            && parts[2] == "states"
            && matches!(parts[5], "execution" | "express")
            && parts[3..].iter().all(|p| !p.is_empty());
        ok.then(|| ExecutionArn {
            arn: arn.to_string(),
        })
    }
    fn part(&self, i: usize) -> &str {
        self.arn.splitn(8, ':').nth(i).unwrap_or_default()
    }
    pub fn as_str(&self) -> &str {
        &self.arn
    }
    pub fn partition(&self) -> &str {
        self.part(1)
    }
    pub fn region(&self) -> &str {
        self.part(3)
    }
    pub fn account(&self) -> &str {
        self.part(4)
    }
    pub fn state_machine_name(&self) -> &str {
        self.part(6)
    }
    /// The execution's name (for a Map Run child, everything after the state machine).
    pub fn name(&self) -> &str {
        self.part(7)
    }
    /// The ARN of the state machine the execution belongs to.
    pub fn state_machine_arn(&self) -> String {
        format!(
            "arn:{}:states:{}:{}:stateMachine:{}",
            self.partition(),
            self.region(),
            self.account(),
            self.state_machine_name()
        )
    }
}

impl fmt::Display for ExecutionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SfnDetail {
    #[serde(default)]
    execution_arn: Option<String>,
    #[serde(default)]
    state_machine_arn: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    redrive_count: Option<u32>,
    #[serde(default)]
    redrive_status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

pub const SFN_SOURCE: &str = "aws.states";
pub const SFN_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

impl Event {
    /// Parses one event from JSON text.
    pub fn parse(text: &str) -> Result<Event, EventError> {
        let document: Value = serde_json::from_str(text).map_err(EventError::Json)?;
        Event::from_value(document)
    }

    /// Reads an event from a JSON document.
    pub fn from_value(document: Value) -> Result<Event, EventError> {
        let obj = document.as_object().ok_or(EventError::NotAnObject)?;
        let text = |field: &'static str, required: bool| -> Result<Option<String>, EventError> {
            match obj.get(field) {
                None | Some(Value::Null) if required => Err(EventError::MissingField(field)),
                None | Some(Value::Null) => Ok(None),
                Some(v) => String::deserialize(v)
                    .map(Some)
                    .map_err(|source| EventError::Field { field, source }),
            }
        };
        let source = text("source", true)?.unwrap_or_default();
        let detail_type = text("detail-type", true)?.unwrap_or_default();
        let id = text("id", false)?.unwrap_or_default();
        let account = text("account", false)?;
        let region = text("region", false)?;
        let time = text("time", false)?;
        let detail = obj
            .get("detail")
            .ok_or(EventError::MissingField("detail"))?;
        let signal = if source == SFN_SOURCE && detail_type == SFN_STATUS_CHANGE {
            Signal::Execution(parse_sfn(detail)?)
        } else {
            Signal::Other
        };
        Ok(Event {
            id,
            source,
            detail_type,
            account,
            region,
            time,
            document,
            signal,
        })
    }
}

fn parse_sfn(detail: &Value) -> Result<ExecutionChange, EventError> {
    let d = SfnDetail::deserialize(detail).map_err(|source| EventError::Field {
        field: "detail",
        source,
    })?;
    let non_empty = |v: Option<String>, name: &'static str| {
        v.filter(|s| !s.is_empty())
            .ok_or(EventError::MissingDetail(name))
    };
    let arn = non_empty(d.execution_arn, "executionArn")?;
    let execution = ExecutionArn::parse(&arn).ok_or(EventError::BadExecutionArn(arn))?;
    let status = non_empty(d.status, "status")?;
    Ok(ExecutionChange {
        state_machine_arn: d
            .state_machine_arn
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| execution.state_machine_arn()),
        name: d.name.unwrap_or_else(|| execution.name().to_string()),
        execution,
        status,
        redrive_count: d.redrive_count.unwrap_or(0),
        redrive_status: d.redrive_status,
        error: d.error,
        cause: d.cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_2022_failed_event_is_an_execution_failure_with_redrive_count_zero() {
        let event = Event::parse(&fixture(
            "sfn-status-change__FAILED__awsdocs-sfn-devguide-2022.json",
        ))
        .unwrap();
        let Signal::Execution(change) = event.signal else {
            panic!("not recognised")
        };
        assert!(change.is_failure());
        assert_eq!(change.status, "FAILED");
        assert_eq!(change.redrive_count, 0);
        assert_eq!(change.execution.name(), change.name);
    }

    #[test]
    fn the_current_shape_with_redrive_fields_and_unknown_status_is_tolerated() {
        let text = r#"{"version":"0","id":"e1","detail-type":"Step Functions Execution Status Change","source":"aws.states",
          "account":"123456789012","time":"2026-11-29T10:00:00Z","region":"us-east-1","resources":[],
          "detail":{"executionArn":"arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:run-1",
            "stateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:thera-pipeline-prod-daily",
            "name":"run-1","status":"PENDING_REDRIVE","error":null,"cause":null,"redriveCount":2,
            "redriveDate":1732870000000,"redriveStatus":"REDRIVABLE","somethingNew":{"x":1}}}"#;
        let event = Event::parse(text).unwrap();
        let Signal::Execution(change) = event.signal else {
            panic!()
        };
        assert_eq!(change.redrive_count, 2);
        assert!(!change.is_failure());
        assert_eq!(
            change.execution.state_machine_arn(),
            change.state_machine_arn
        );
    }

    #[test]
    fn malformed_events_are_rejected_with_the_reason() {
        assert!(matches!(Event::parse("{nope"), Err(EventError::Json(_))));
        assert!(matches!(Event::parse("[1]"), Err(EventError::NotAnObject)));
        assert!(matches!(
            Event::parse(r#"{"detail-type":"x","detail":{}}"#),
            Err(EventError::MissingField("source"))
        ));
        let bad_arn = r#"{"source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{"executionArn":"arn:aws:s3:::x","status":"FAILED"}}"#;
        assert!(matches!(
            Event::parse(bad_arn),
            Err(EventError::BadExecutionArn(_))
        ));
        let no_status = r#"{"source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{"executionArn":"arn:aws:states:us-east-1:1:execution:m:n"}}"#;
        assert!(matches!(
            Event::parse(no_status),
            Err(EventError::MissingDetail("status"))
        ));
    }

    #[test]
    fn other_sources_are_kept_for_policies() {
        let event = Event::parse(&fixture(
            "powertools-python__s3EventBridgeNotificationObjectDeletedEvent.json",
        ))
        .unwrap();
        assert!(matches!(event.signal, Signal::Other));
        assert_eq!(event.source, "aws.s3");
    }
}
