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
    /// A CloudWatch alarm changed state.
    Alarm(AlarmChange),
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

/// A CloudWatch "Alarm State Change" (from EventBridge, or an alarm's direct Lambda
/// action, which is normalized into the EventBridge shape).
#[derive(Clone, Debug)]
pub struct AlarmChange {
    pub name: String,
    pub arn: Option<String>,
    pub state: String,
    pub previous_state: Option<String>,
    /// Namespace, metric name and dimensions of the first metric with one.
    pub namespace: Option<String>,
    pub metric: Option<String>,
    pub dimensions: serde_json::Map<String, Value>,
}

impl AlarmChange {
    /// Only transitions into `ALARM` are failures; `OK` and `INSUFFICIENT_DATA` are not.
    pub fn is_failure(&self) -> bool {
        self.state == "ALARM" && self.previous_state.as_deref() != Some("ALARM")
    }
}

pub const ALARM_SOURCE: &str = "aws.cloudwatch";
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";

/// Parses an RFC 3339 / ISO 8601 timestamp (`Z`, `+00:00` or `+0000` offsets, or none for
/// UTC; optional fraction; `T` or a space between date and time) to Unix seconds, with
/// the `time` crate. CloudWatch and Lambda write offsets as `+0000`, which RFC 3339 spells
/// `+00:00`, and some tools write no offset: both are mended before parsing.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let mut fixed = text.to_string();
    if fixed.as_bytes().get(10) == Some(&b' ') {
        fixed.replace_range(10..11, "T");
    }
    let b = fixed.as_bytes();
    let n = b.len();
    if n > 5 && matches!(b[n - 5], b'+' | b'-') && b[n - 4..].iter().all(u8::is_ascii_digit) && n - 5 > 18 {
        fixed.insert(n - 2, ':');
    } else if fixed.get(19..).is_some_and(|rest| !rest.contains(['Z', 'z', '+', '-'])) {
        fixed.push('Z');
    }
    time::OffsetDateTime::parse(&fixed, &Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// Formats Unix seconds as RFC 3339 in UTC (`2026-11-30T01:02:03Z`); the number itself
/// when it is out of the calendar's range.
pub fn format_timestamp(t: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
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
        ok.then(|| ExecutionArn { arn: arn.to_string() })
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
    /// The event as remediator keeps it (with a claim, in a timer's payload): without
    /// the execution's input and output, which may hold API keys and personal data and
    /// which Step Functions already keeps, nor remediator's own `diagnosis`.
    pub fn storable(&self) -> Value {
        let mut document = self.document.clone();
        if let Some(obj) = document.as_object_mut() {
            obj.remove("diagnosis");
            if let Some(detail) = obj.get_mut("detail").and_then(Value::as_object_mut) {
                for field in ["input", "output"] {
                    if detail.remove(field).is_some() {
                        detail.insert(format!("{field}Details"), serde_json::json!({"included": false}));
                    }
                }
            }
        }
        document
    }

    /// Parses one event from JSON text.
    pub fn parse(text: &str) -> Result<Event, EventError> {
        let document: Value = serde_json::from_str(text).map_err(EventError::Json)?;
        Event::from_value(document)
    }

    /// Reads an event from a JSON document.
    pub fn from_value(document: Value) -> Result<Event, EventError> {
        let document = normalize_alarm_action(document);
        let obj = document.as_object().ok_or(EventError::NotAnObject)?;
        let text = |field: &'static str, required: bool| -> Result<Option<String>, EventError> {
            match obj.get(field) {
                None | Some(Value::Null) if required => Err(EventError::MissingField(field)),
                None | Some(Value::Null) => Ok(None),
                Some(v) => String::deserialize(v).map(Some).map_err(|source| EventError::Field { field, source }),
            }
        };
        let source = text("source", true)?.unwrap_or_default();
        let detail_type = text("detail-type", true)?.unwrap_or_default();
        let id = text("id", false)?.unwrap_or_default();
        let account = text("account", false)?;
        let region = text("region", false)?;
        let time = text("time", false)?;
        let detail = obj.get("detail").ok_or(EventError::MissingField("detail"))?;
        let signal = if source == SFN_SOURCE && detail_type == SFN_STATUS_CHANGE {
            Signal::Execution(parse_sfn(detail)?)
        } else if source == ALARM_SOURCE && detail_type == ALARM_STATE_CHANGE {
            Signal::Alarm(parse_alarm(detail, obj.get("resources"))?)
        } else {
            Signal::Other
        };
        Ok(Event { id, source, detail_type, account, region, time, document, signal })
    }
}

/// The payload of an alarm's direct Lambda action (`alarmData`, no `detail`) becomes
/// the EventBridge "CloudWatch Alarm State Change" shape, so one policy covers both.
fn normalize_alarm_action(document: Value) -> Value {
    let Some(obj) = document.as_object() else {
        return document;
    };
    if obj.contains_key("detail") || !obj.contains_key("alarmData") {
        return document;
    }
    let text = |k: &str| obj.get(k).cloned().unwrap_or(Value::Null);
    let alarm_arn = obj.get("alarmArn").and_then(Value::as_str).unwrap_or_default();
    let stamp =
        obj.get("alarmData").and_then(|d| d.pointer("/state/timestamp")).and_then(Value::as_str).unwrap_or_default();
    serde_json::json!({
        "version": "0",
        "id": format!("alarm-action:{alarm_arn}:{stamp}"),
        "detail-type": ALARM_STATE_CHANGE,
        "source": text("source"),
        "account": text("accountId"),
        "time": text("time"),
        "region": text("region"),
        "resources": if alarm_arn.is_empty() { serde_json::json!([]) } else { serde_json::json!([alarm_arn]) },
        "detail": text("alarmData"),
    })
}

fn parse_alarm(detail: &Value, resources: Option<&Value>) -> Result<AlarmChange, EventError> {
    let name = detail
        .get("alarmName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(EventError::MissingDetail("alarmName"))?;
    let state =
        detail.pointer("/state/value").and_then(Value::as_str).ok_or(EventError::MissingDetail("state.value"))?;
    let metric = detail
        .pointer("/configuration/metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.pointer("/metricStat/metric"))
        .find(|m| m.get("dimensions").and_then(Value::as_object).is_some_and(|d| !d.is_empty()))
        .or_else(|| {
            detail
                .pointer("/configuration/metrics")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|m| m.pointer("/metricStat/metric"))
        });
    Ok(AlarmChange {
        name: name.to_string(),
        arn: resources.and_then(|r| r.get(0)).and_then(Value::as_str).map(str::to_string),
        state: state.to_string(),
        previous_state: detail.pointer("/previousState/value").and_then(Value::as_str).map(str::to_string),
        namespace: metric.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_string),
        metric: metric.and_then(|m| m.get("name")).and_then(Value::as_str).map(str::to_string),
        dimensions: metric.and_then(|m| m.get("dimensions")).and_then(Value::as_object).cloned().unwrap_or_default(),
    })
}

fn parse_sfn(detail: &Value) -> Result<ExecutionChange, EventError> {
    let d = SfnDetail::deserialize(detail).map_err(|source| EventError::Field { field: "detail", source })?;
    let non_empty =
        |v: Option<String>, name: &'static str| v.filter(|s| !s.is_empty()).ok_or(EventError::MissingDetail(name));
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
        let path = format!("{}/../tests/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_2022_failed_event_is_an_execution_failure_with_redrive_count_zero() {
        let event = Event::parse(&fixture("sfn-status-change__FAILED__awsdocs-sfn-devguide-2022.json")).unwrap();
        let Signal::Execution(change) = event.signal else { panic!("not recognised") };
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
        let Signal::Execution(change) = event.signal else { panic!() };
        assert_eq!(change.redrive_count, 2);
        assert!(!change.is_failure());
        assert_eq!(change.execution.state_machine_arn(), change.state_machine_arn);
    }

    #[test]
    fn malformed_events_are_rejected_with_the_reason() {
        assert!(matches!(Event::parse("{nope"), Err(EventError::Json(_))));
        assert!(matches!(Event::parse("[1]"), Err(EventError::NotAnObject)));
        assert!(matches!(Event::parse(r#"{"detail-type":"x","detail":{}}"#), Err(EventError::MissingField("source"))));
        let bad_arn = r#"{"source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{"executionArn":"arn:aws:s3:::x","status":"FAILED"}}"#;
        assert!(matches!(Event::parse(bad_arn), Err(EventError::BadExecutionArn(_))));
        let no_status = r#"{"source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{"executionArn":"arn:aws:states:us-east-1:1:execution:m:n"}}"#;
        assert!(matches!(Event::parse(no_status), Err(EventError::MissingDetail("status"))));
    }

    #[test]
    fn alarm_state_changes_are_recognised_from_eventbridge_and_direct_actions() {
        let event = Event::parse(&fixture(
            "cloudwatch-alarm__state-change-for-a-single-metric-alarm__awsdocs-cw-userguide-2023.json",
        ))
        .unwrap();
        let Signal::Alarm(alarm) = event.signal else { panic!("not an alarm") };
        assert_eq!(alarm.name, "ServerCpuTooHigh");
        assert!(alarm.is_failure());
        assert_eq!(alarm.namespace.as_deref(), Some("AWS/EC2"));
        assert_eq!(alarm.dimensions["InstanceId"], "i-12345678901234567");

        let direct = Event::parse(&fixture("powertools-python__cloudWatchAlarmEventSingleMetric.json")).unwrap();
        assert_eq!(direct.detail_type, ALARM_STATE_CHANGE);
        assert_eq!(direct.document["detail"]["alarmName"], "Test alert");
        let Signal::Alarm(alarm) = direct.signal else { panic!("not an alarm") };
        assert_eq!(alarm.state, "ALARM");
        assert_eq!(alarm.arn.as_deref(), Some("arn:aws:cloudwatch:eu-west-1:912397435824:alarm:test_alarm"));
    }

    #[test]
    fn timestamps_parse_in_every_aws_format() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("2019-10-02T17:04:40Z"), Some(1570035880));
        assert_eq!(parse_timestamp("2019-10-02T17:04:40.989+0000"), Some(1570035880));
        assert_eq!(parse_timestamp("2019-10-02T19:04:40+02:00"), Some(1570035880));
        assert_eq!(parse_timestamp("2019-10-02 17:04:40-0130"), Some(1570035880 + 5400));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2019-10-02T17:04:4é0"), None, "not a panic");
        assert_eq!(parse_timestamp("2019-02-30T00:00:00Z"), None, "no 30 February");
        assert_eq!(parse_timestamp("2019-10-02T17:04:40"), Some(1570035880), "no offset: UTC");
        assert_eq!(parse_timestamp("2019-10-02T17:04:40.5"), Some(1570035880), "no offset: UTC");
        for t in [0, 1570035880, 4102444800] {
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }
        assert_eq!(format_timestamp(1570035880), "2019-10-02T17:04:40Z");
        assert_eq!(format_timestamp(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn other_sources_are_kept_for_policies() {
        let event =
            Event::parse(&fixture("powertools-python__s3EventBridgeNotificationObjectDeletedEvent.json")).unwrap();
        assert!(matches!(event.signal, Signal::Other));
        assert_eq!(event.source, "aws.s3");
    }
}
