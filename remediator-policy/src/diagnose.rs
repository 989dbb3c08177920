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
//!
//! The failure is traced, not guessed: from the execution's terminal event back along
//! `previousEventId` to the task event that failed, then to the attempt that ran it and
//! the state that scheduled it, then on to the Parallel branch or Map iteration around
//! it. Recency ("the last state entered") is wrong as soon as branches run side by side:
//! a sibling branch may enter states and schedule work after the failing one did. Only
//! a history without `previousEventId` links falls back to recency.

use std::cell::Cell;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::event::{AlarmChange, ExecutionArn};

/// One history event, reduced to what diagnosis needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryEvent {
    pub id: i64,
    pub previous_event_id: i64,
    pub kind: String,
    /// Name of the state, for `*StateEntered` events; of the Map state, for
    /// `MapIteration*` events.
    pub state: Option<String>,
    /// The iteration's index, for `MapIteration*` events.
    pub map_index: Option<u64>,
    /// Unix seconds, with fractions where the source has them.
    pub timestamp: Option<f64>,
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
    /// The state's `TimeoutSeconds` (`timeoutInSeconds`), when it has one.
    pub timeout_seconds: Option<u64>,
    /// The state's `HeartbeatSeconds` (`heartbeatInSeconds`), when it has one.
    pub heartbeat_seconds: Option<u64>,
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
    /// The innermost Parallel or Map state around the failed state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_state: Option<String>,
    /// The Parallel branch the failed state ran in, named by the branch's first state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The index of the Map iteration the failed state ran in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_iteration: Option<u64>,
    /// Whose time ran out, when the failure is a timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_kind: Option<TimeoutKind>,
    /// The failed state's `TimeoutSeconds`, as its scheduled event recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_timeout_seconds: Option<u64>,
    /// The failed state's `HeartbeatSeconds`, as its scheduled event recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    /// How long the failed attempt ran: from its start (or scheduling) to its failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// N of a Lambda "Task timed out after N seconds" in the cause: the time the
    /// function itself had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out_after_seconds: Option<f64>,
    /// The S3 object the failed state was reading, when the failure names one: an
    /// `aws-sdk:s3` task's `Bucket` and `Key`, or an `s3://BUCKET/KEY` in the cause (a
    /// function that reports what it could not read). As an ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
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

/// Whose time ran out. Only a `function` timeout is helped by a longer function timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutKind {
    /// The Lambda function ran out of its own configured time: a `LambdaFunctionTimedOut`
    /// event, a `Sandbox.Timedout` error, or Lambda's "Task timed out after N seconds".
    Function,
    /// The Task state's own `TimeoutSeconds` ran out (`TaskTimedOut`).
    State,
    /// The Task state's `HeartbeatSeconds` passed without a heartbeat (`TaskTimedOut`
    /// before `TimeoutSeconds`, or `States.HeartbeatTimeout`).
    Heartbeat,
    /// The execution's `TimeoutSeconds` ran out (`ExecutionTimedOut`).
    Execution,
}

impl TimeoutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Function => "function",
            TimeoutKind::State => "state",
            TimeoutKind::Heartbeat => "heartbeat",
            TimeoutKind::Execution => "execution",
        }
    }
}

const TERMINAL: &[&str] = &["ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"];
const SCHEDULED: &[&str] = &["TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"];
const STARTED: &[&str] = &["TaskStarted", "LambdaFunctionStarted", "ActivityStarted"];
/// Failures of a container: they pass on a failure from inside, they are not its cause.
const CONTAINER_FAILED: &[&str] = &["ParallelStateFailed", "MapStateFailed", "MapIterationFailed"];
/// The end of a Parallel or Map state, met before its start when walking back.
const CONTAINER_END: &[&str] = &[
    "ParallelStateSucceeded",
    "ParallelStateFailed",
    "ParallelStateAborted",
    "MapStateSucceeded",
    "MapStateFailed",
    "MapStateAborted",
];
/// Slack when comparing a reported time with a limit in whole seconds.
const ROUNDING_SECONDS: f64 = 1.0;

fn is_failure_kind(kind: &str) -> bool {
    !TERMINAL.contains(&kind)
        && (kind.ends_with("Failed") || kind.ends_with("TimedOut"))
        && !kind.starts_with("Execution")
}

/// A failure of the work itself (a task, a function, an activity, a Map Run), not one a
/// container passes on.
fn is_task_failure(kind: &str) -> bool {
    is_failure_kind(kind) && !CONTAINER_FAILED.contains(&kind)
}

impl Diagnosis {
    /// Whether every field diagnosis can fill is filled (history paging can stop).
    pub fn is_complete(&self) -> bool {
        self.state.is_some() && self.error.is_some() && self.resource.is_some()
    }

    /// Why raising the failed function's timeout, now `configured` seconds, cannot help,
    /// if it cannot: the time that ran out was not the function's (a state, heartbeat or
    /// execution timeout), or Lambda stopped the function after N seconds, fewer than its
    /// configured timeout (allowing for rounding).
    pub fn refuse_timeout_raise(&self, configured: u32) -> Option<String> {
        let whose = match self.timeout_kind {
            Some(TimeoutKind::State) => Some("state (its TimeoutSeconds)"),
            Some(TimeoutKind::Heartbeat) => Some("state's heartbeat (its HeartbeatSeconds)"),
            Some(TimeoutKind::Execution) => Some("execution (its TimeoutSeconds)"),
            Some(TimeoutKind::Function) | None => None,
        };
        if let Some(whose) = whose {
            return Some(format!("the {whose} timed out, not the function: a longer function timeout cannot help"));
        }
        match self.timed_out_after_seconds {
            Some(n) if n + ROUNDING_SECONDS < f64::from(configured) => Some(format!(
                "the function timed out after {n:.2} s, less than its configured {configured} s: \
                 its own timeout was not what stopped it"
            )),
            _ => None,
        }
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
    let by_id: HashMap<i64, &HistoryEvent> = sorted.iter().map(|e| (e.id, *e)).collect();
    let terminal = sorted.iter().rev().find(|e| TERMINAL.contains(&e.kind.as_str())).copied();
    // A chain broken by an event not read yet (history is read newest first) leaves the
    // diagnosis incomplete so that paging goes on; broken in a whole history (it starts
    // with ExecutionStarted), or absent, it gives way to recency.
    let whole = sorted.first().is_some_and(|e| e.kind == "ExecutionStarted");
    let trace = match terminal.and_then(|t| Trace::follow(t, &by_id)) {
        Some(t) if t.broken && whole => Trace::by_recency(&sorted, terminal),
        // The links led to neither a failure nor a state: nothing to trust them for.
        Some(t) if !t.broken && t.failure.is_none() && t.entered.is_none() => Trace::by_recency(&sorted, terminal),
        Some(t) => t,
        None => Trace::by_recency(&sorted, terminal),
    };

    let failure = trace.failure;
    let (error, cause) = match (failure, terminal) {
        (Some(f), _) if f.error.is_some() || f.cause.is_some() => (f.error.clone(), f.cause.clone()),
        (_, Some(t)) if t.kind == "ExecutionTimedOut" && t.error.is_none() => {
            (Some("States.Timeout".into()), t.cause.clone())
        }
        (_, Some(t)) => (t.error.clone(), t.cause.clone()),
        (Some(f), None) => (f.error.clone(), f.cause.clone()),
        (None, None) => (None, None),
    };
    let scheduled = trace.scheduled.and_then(|e| e.scheduled.as_ref());
    let (resource_type, resource) = match scheduled {
        Some(s) => resolve_resource(execution, s),
        None => (None, None),
    };
    let began = trace.started.or(trace.scheduled).and_then(|e| e.timestamp);
    let duration_seconds = match (began, failure.and_then(|f| f.timestamp)) {
        (Some(b), Some(f)) if f >= b => Some(((f - b) * 1000.0).round() / 1000.0),
        _ => None,
    };
    let timed_out_after_seconds = cause.as_deref().and_then(timed_out_after);
    // The object a failed state read: an S3 read task's own Bucket and Key (not a copy's
    // destination), else the one `s3://` URL the cause names.
    let reads = scheduled.is_some_and(|s| {
        matches!(s.resource.as_str(), "getObject" | "headObject" | "getObjectAttributes" | "selectObjectContent")
    });
    let object = match (resource_type.as_deref(), resource.as_deref()) {
        (Some("aws-sdk:s3" | "s3"), Some(r)) if reads && r.contains('/') => Some(r.to_string()),
        _ => failure.and_then(|f| f.cause.as_deref()).or(cause.as_deref()).and_then(|c| s3_url(c, execution)),
    };
    let state_timeout_seconds = scheduled.and_then(|s| s.timeout_seconds);
    let heartbeat_seconds = scheduled.and_then(|s| s.heartbeat_seconds);
    let timeout_kind = classify_timeout(
        terminal.map(|t| t.kind.as_str()),
        failure.map(|f| f.kind.as_str()),
        error.as_deref(),
        timed_out_after_seconds,
        (state_timeout_seconds, heartbeat_seconds, duration_seconds),
    );
    Diagnosis {
        state: trace.entered.and_then(|e| e.state.clone()),
        resource,
        resource_type,
        error,
        cause,
        parent_state: trace.parent,
        branch: trace.branch,
        map_iteration: trace.map_iteration,
        timeout_kind,
        state_timeout_seconds,
        heartbeat_seconds,
        duration_seconds,
        timed_out_after_seconds,
        object,
        ..Diagnosis::default()
    }
}

/// The one `s3://BUCKET/KEY` a cause names, as an object ARN; none when it names none or
/// several. A cause that is JSON (a function's error payload) is read as the text of its
/// strings, so escapes are undone first. The key ends at whitespace, a quote or a closing
/// bracket.
fn s3_url(cause: &str, execution: &ExecutionArn) -> Option<String> {
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    match serde_json::from_str::<Value>(cause) {
        Ok(value @ (Value::Object(_) | Value::Array(_))) => strings(&value, &mut texts),
        _ => texts.push(cause.to_string()),
    }
    let mut found: Vec<String> = Vec::new();
    for text in &texts {
        for (at, _) in text.match_indices("s3://") {
            let rest = &text[at + 5..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ']' | '}' | '>'))
                .unwrap_or(rest.len());
            let url = rest[..end].trim_end_matches(['.', ',', ';', ':']);
            let Some((bucket, key)) = url.split_once('/') else { continue };
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
            if valid_bucket && !key.is_empty() {
                let arn = format!("arn:{}:s3:::{bucket}/{key}", execution.partition());
                if !found.contains(&arn) {
                    found.push(arn);
                }
            }
        }
    }
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// What the walk back from the end of an execution found.
#[derive(Default)]
struct Trace<'a> {
    /// The task event that failed (or timed out).
    failure: Option<&'a HistoryEvent>,
    /// The scheduled and started events of the attempt that failed.
    scheduled: Option<&'a HistoryEvent>,
    started: Option<&'a HistoryEvent>,
    /// The state that failed (or was running when the execution ended).
    entered: Option<&'a HistoryEvent>,
    parent: Option<String>,
    branch: Option<String>,
    map_iteration: Option<u64>,
    /// The walk to the failure and its state met a `previousEventId` that is not in
    /// the history.
    broken: bool,
}

impl<'a> Trace<'a> {
    /// Follows `previousEventId` from the terminal event: down to the task failure, back
    /// to its scheduled and state-entered events, then out to the enclosing Parallel
    /// branch or Map iteration. `None` if the terminal event has no link to follow.
    fn follow(terminal: &'a HistoryEvent, by_id: &HashMap<i64, &'a HistoryEvent>) -> Option<Trace<'a>> {
        if terminal.previous_event_id <= 0 {
            return None;
        }
        let mut t = Trace::default();
        let broken = Cell::new(false);
        let prev = |e: &HistoryEvent| -> Option<&'a HistoryEvent> {
            if e.previous_event_id <= 0 {
                return None;
            }
            let found = by_id.get(&e.previous_event_id).copied();
            broken.set(broken.get() || found.is_none());
            found
        };
        // 1. From the end to the failure. A timed-out or aborted execution did not fail
        //    of a task: the walk only looks for the state that was running.
        let look_for_failure = terminal.kind == "ExecutionFailed";
        let mut failed_iteration = None;
        let mut cur = prev(terminal);
        while let Some(e) = cur {
            if look_for_failure && is_task_failure(&e.kind) {
                t.failure = Some(e);
                break;
            }
            if e.kind == "MapIterationFailed" {
                failed_iteration = e.map_index;
            }
            if e.kind.ends_with("StateEntered") {
                // Failed by itself (a Fail state, a Choice or Pass with a runtime error).
                t.entered = Some(e);
                break;
            }
            cur = prev(e);
        }
        // 2. From the failure back to the attempt and the state that ran it.
        if let Some(f) = t.failure {
            let mut cur = prev(f);
            while let Some(e) = cur {
                if t.scheduled.is_none() && SCHEDULED.contains(&e.kind.as_str()) {
                    t.scheduled = Some(e);
                } else if t.scheduled.is_none() && t.started.is_none() && STARTED.contains(&e.kind.as_str()) {
                    t.started = Some(e);
                } else if e.kind.ends_with("StateEntered") {
                    t.entered = Some(e);
                    break;
                }
                cur = prev(e);
            }
        }
        // A gap from here on only loses the branch or iteration.
        t.broken = broken.get();
        // 3. From the state out to the innermost Parallel branch or Map iteration around
        //    it, stepping over containers that began and ended before it.
        if let Some(entered) = t.entered {
            let mut first = entered;
            let mut depth = 0usize;
            let mut cur = prev(entered);
            while let Some(e) = cur {
                let kind = e.kind.as_str();
                if CONTAINER_END.contains(&kind) {
                    depth += 1;
                } else if kind == "ParallelStateStarted" || kind == "MapStateStarted" {
                    if depth == 0 {
                        if kind == "ParallelStateStarted" {
                            t.branch = first.state.clone();
                            t.parent =
                                prev(e).filter(|p| p.kind.ends_with("StateEntered")).and_then(|p| p.state.clone());
                        }
                        break;
                    }
                    depth -= 1;
                } else if kind == "MapIterationStarted" && depth == 0 {
                    t.map_iteration = e.map_index;
                    t.parent = e.state.clone();
                    break;
                } else if kind.ends_with("StateEntered") && depth == 0 {
                    first = e;
                }
                cur = prev(e);
            }
        }
        t.map_iteration = t.map_iteration.or(failed_iteration);
        Some(t)
    }

    /// Without links: the failing state is the last one entered before the end. A
    /// failure event after it belongs to that state; one before it was retried or
    /// caught, and is not the cause.
    fn by_recency(sorted: &[&'a HistoryEvent], terminal: Option<&'a HistoryEvent>) -> Trace<'a> {
        let end = terminal.map_or(i64::MAX, |t| t.id);
        let before_end = || sorted.iter().copied().filter(move |e| e.id <= end);
        let entered = before_end().rfind(|e| e.kind.ends_with("StateEntered"));
        let from = entered.map_or(0, |e| e.id);
        let failure = before_end().rfind(|e| e.id > from && is_task_failure(&e.kind));
        let upto = failure.map_or(end, |f| f.id);
        let attempt = |kinds: &[&str]| {
            before_end().filter(|e| e.id > from && e.id <= upto).rfind(|e| kinds.contains(&e.kind.as_str()))
        };
        let scheduled = attempt(SCHEDULED).filter(|e| e.scheduled.is_some());
        let started = attempt(STARTED).filter(|s| scheduled.is_some_and(|d| s.id > d.id));
        Trace { failure, scheduled, started, entered, ..Trace::default() }
    }
}

/// Whose time ran out, if the failure is a timeout. `limits` are the state's
/// `TimeoutSeconds`, its `HeartbeatSeconds` and how long the attempt ran.
fn classify_timeout(
    terminal: Option<&str>,
    failure: Option<&str>,
    error: Option<&str>,
    timed_out_after: Option<f64>,
    limits: (Option<u64>, Option<u64>, Option<f64>),
) -> Option<TimeoutKind> {
    let (timeout, heartbeat, ran) = limits;
    if terminal == Some("ExecutionTimedOut") {
        return Some(TimeoutKind::Execution);
    }
    match failure {
        // shared/docs/failure-modes.md row 1: the direct-ARN integration's function timeout.
        Some("LambdaFunctionTimedOut") => return Some(TimeoutKind::Function),
        Some("TaskTimedOut" | "ActivityTimedOut") => {
            let before_timeout = match (timeout, ran) {
                (Some(t), Some(r)) => r + ROUNDING_SECONDS < t as f64,
                // A heartbeat and no TimeoutSeconds (the default is 99999999 s).
                (None, _) => true,
                (Some(_), None) => false,
            };
            let heartbeat_ran_out = error == Some("States.HeartbeatTimeout") || (heartbeat.is_some() && before_timeout);
            return Some(if heartbeat_ran_out { TimeoutKind::Heartbeat } else { TimeoutKind::State });
        }
        _ => {}
    }
    if error == Some("Sandbox.Timedout") || timed_out_after.is_some() {
        return Some(TimeoutKind::Function);
    }
    None
}

/// N of Lambda's "Task timed out after N seconds" (N printed as `300.00`).
fn timed_out_after(cause: &str) -> Option<f64> {
    const MARK: &str = "Task timed out after ";
    let rest = &cause[cause.find(MARK)? + MARK.len()..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].trim_end_matches('.').parse().ok()
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
        timestamp: v.get("timestamp").and_then(seconds),
        ..HistoryEvent::default()
    };
    let s = |d: &Value, k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    let u = |d: &Value, k: &str| d.get(k).and_then(Value::as_u64);
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
                timeout_seconds: u(details, "timeoutInSeconds"),
                heartbeat_seconds: u(details, "heartbeatInSeconds"),
            });
        } else if key.starts_with("mapIteration") {
            event.state = s(details, "name");
            event.map_index = u(details, "index");
        } else {
            event.error = event.error.or_else(|| s(details, "error"));
            event.cause = event.cause.or_else(|| s(details, "cause"));
        }
    }
    Ok(event)
}

/// A history timestamp: Unix seconds (the API's JSON) or RFC 3339 (the CLI's output).
fn seconds(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n);
    }
    let text = v.as_str()?;
    let whole = crate::event::parse_timestamp(text)? as f64;
    let fraction = text
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|f| &f[..f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len())])
        .and_then(|digits| format!("0.{digits}").parse::<f64>().ok())
        .unwrap_or(0.0);
    Some(whole + fraction)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_object_a_cause_names_is_read_once_and_unescaped() {
        let execution = ExecutionArn::parse("arn:aws:states:us-east-1:1:execution:sm:run").unwrap();
        let url = |c: &str| s3_url(c, &execution);
        assert_eq!(
            url(
                r#"{"errorMessage": "NoSuchKey (reading s3://data-1/thera-pipeline/caf\u00e9 run[1].json)", "errorType": "NoSuchKey"}"#
            ),
            Some("arn:aws:s3:::data-1/thera-pipeline/café".into()),
            "JSON escapes undone; the key ends at whitespace"
        );
        assert_eq!(
            url("missing s3://data-1/thera-pipeline/x.json."),
            Some("arn:aws:s3:::data-1/thera-pipeline/x.json".into())
        );
        assert_eq!(url("copy s3://a-bucket/x.json to s3://b-bucket/y.json failed"), None, "two objects: neither");
        assert_eq!(
            url("s3://a-bucket/x.json and again s3://a-bucket/x.json"),
            Some("arn:aws:s3:::a-bucket/x.json".into())
        );
        assert_eq!(url("s3://UPPER/x.json"), None, "not a bucket name");
        assert_eq!(url("no url here"), None);
    }

    use super::*;

    fn history(name: &str) -> Vec<HistoryEvent> {
        let path = format!("{}/../tests/fixtures/history/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        events_from_json(&serde_json::from_str(&text).unwrap()).unwrap()
    }

    /// A history shipped with the policy cases (`policies/cases/fixtures`).
    fn case_history(name: &str) -> Vec<HistoryEvent> {
        let path = format!("{}/../policies/cases/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
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
    fn a_failed_parallel_branch_names_its_own_function_not_the_sibling_scheduled_later() {
        // Branch PullApolloDelta's function timed out (Lambda.Unknown) while the sibling
        // branch PullFirecrawl was entered later and scheduled its retry later still.
        let d = diagnose(&arn(), &case_history("parallel-branch-timeout-history.json"));
        assert_eq!(d.state.as_deref(), Some("PullApolloDelta"));
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-apollo-delta-pull")
        );
        assert_eq!(d.error.as_deref(), Some("Lambda.Unknown"));
        assert_eq!(d.parent_state.as_deref(), Some("PullSources"));
        assert_eq!(d.branch.as_deref(), Some("PullApolloDelta"));
        assert_eq!(d.map_iteration, None);
        // Lambda stopped the function at its own limit: a function timeout.
        assert_eq!(d.timeout_kind, Some(TimeoutKind::Function));
        assert_eq!(d.timed_out_after_seconds, Some(300.0));
        assert_eq!(d.duration_seconds, Some(300.05));
        assert!(d.is_complete());
    }

    #[test]
    fn a_parallel_history_read_newest_first_stays_incomplete_until_the_failed_branch_is_read() {
        // The first page holds the failure but not the failed branch's scheduling: the
        // diagnosis must not settle on the sibling (which would stop paging).
        let newest: Vec<HistoryEvent> =
            case_history("parallel-branch-timeout-history.json").into_iter().filter(|e| e.id >= 8).collect();
        let d = diagnose(&arn(), &newest);
        assert_eq!(d.error.as_deref(), Some("Lambda.Unknown"));
        assert_eq!(d.state, None);
        assert_eq!(d.resource, None);
        assert!(!d.is_complete());
    }

    #[test]
    fn a_history_without_previous_event_ids_falls_back_to_recency() {
        let mut events = history("lambda-invoke-throttled.json");
        let linked = diagnose(&arn(), &events);
        for e in &mut events {
            e.previous_event_id = 0;
        }
        assert_eq!(diagnose(&arn(), &events), linked);
        assert_eq!(linked.state.as_deref(), Some("PullApolloDelta"));
    }

    #[test]
    fn a_failed_map_iteration_names_its_own_state_and_function() {
        // Iteration 2 timed out in EnrichCompany; iteration 1 had moved on to StoreCompany.
        let d = diagnose(&arn(), &case_history("map-iteration-timeout-history.json"));
        assert_eq!(d.state.as_deref(), Some("EnrichCompany"));
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-enrich-company")
        );
        assert_eq!(d.error.as_deref(), Some("Sandbox.Timedout"));
        assert_eq!(d.parent_state.as_deref(), Some("EnrichCompanies"));
        assert_eq!(d.map_iteration, Some(2));
        assert_eq!(d.branch, None);
        assert_eq!(d.timeout_kind, Some(TimeoutKind::Function));
        assert_eq!(d.timed_out_after_seconds, Some(120.0));
    }

    #[test]
    fn a_task_state_timeout_is_the_states_not_the_functions() {
        let d = diagnose(&arn(), &case_history("lambda-state-timeout-history.json"));
        assert_eq!(d.state.as_deref(), Some("PullApolloFull"));
        assert_eq!(d.resource_type.as_deref(), Some("lambda"));
        assert_eq!(d.error.as_deref(), Some("States.Timeout"));
        assert_eq!(d.timeout_kind, Some(TimeoutKind::State));
        assert_eq!(d.state_timeout_seconds, Some(60));
        assert_eq!(d.duration_seconds, Some(60.01));
        assert_eq!(d.timed_out_after_seconds, None);
        let refusal = d.refuse_timeout_raise(300).unwrap();
        assert!(refusal.contains("state (its TimeoutSeconds) timed out, not the function"), "{refusal}");
        let doc = serde_json::to_value(&d).unwrap();
        assert_eq!(doc["timeoutKind"], "state");
        assert_eq!(doc["stateTimeoutSeconds"], 60);
    }

    #[test]
    fn a_task_that_timed_out_before_its_timeout_seconds_missed_its_heartbeat() {
        let d = diagnose(&arn(), &case_history("lambda-heartbeat-timeout-history.json"));
        assert_eq!(d.state.as_deref(), Some("AwaitApolloExport"));
        assert_eq!(d.timeout_kind, Some(TimeoutKind::Heartbeat));
        assert_eq!(d.heartbeat_seconds, Some(120));
        assert_eq!(d.state_timeout_seconds, Some(3600));
        assert_eq!(d.duration_seconds, Some(241.05));
        assert!(d.refuse_timeout_raise(300).is_some());
    }

    #[test]
    fn function_timeouts_are_told_from_the_event_the_error_or_lambdas_message() {
        // TaskFailed with Sandbox.Timedout (the current lambda:invoke shape).
        let d = diagnose(&arn(), &case_history("lambda-timeout-history.json"));
        assert_eq!(d.timeout_kind, Some(TimeoutKind::Function));
        assert_eq!(d.timed_out_after_seconds, Some(300.0));
        assert_eq!(d.refuse_timeout_raise(300), None);
        // Lambda stopped it at 300 s but it is configured for 600 s: not its own timeout.
        let refusal = d.refuse_timeout_raise(600).unwrap();
        assert!(refusal.contains("after 300.00 s, less than its configured 600 s"), "{refusal}");
        // Rounding: "299.99 seconds" against a configured 300 s is the function's own.
        let rounded = Diagnosis { timed_out_after_seconds: Some(299.99), ..d.clone() };
        assert_eq!(rounded.refuse_timeout_raise(300), None);
        // LambdaFunctionTimedOut (a direct function ARN), as failure-modes.md row 1 says.
        let d = diagnose(&arn(), &history("lambda-direct-timeout.json"));
        assert_eq!(d.timeout_kind, Some(TimeoutKind::Function));
        assert_eq!(d.state_timeout_seconds, Some(300));
        // Not a timeout at all.
        assert_eq!(diagnose(&arn(), &history("lambda-invoke-throttled.json")).timeout_kind, None);
    }

    #[test]
    fn an_execution_timeout_names_the_running_state_and_is_the_executions() {
        let response = serde_json::json!({"events": [
            {"timestamp": "2024-11-29T09:00:00.100Z", "type": "ExecutionStarted", "id": 1, "previousEventId": 0},
            {"timestamp": "2024-11-29T09:00:00.200Z", "type": "TaskStateEntered", "id": 2, "previousEventId": 0,
             "stateEnteredEventDetails": {"name": "PullApolloFull"}},
            {"timestamp": "2024-11-29T09:00:00.300Z", "type": "TaskScheduled", "id": 3, "previousEventId": 2,
             "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke",
               "parameters": "{\"FunctionName\":\"thera-pipeline-prod-apollo-full-pull\"}"}},
            {"timestamp": "2024-11-29T09:00:00.400Z", "type": "TaskStarted", "id": 4, "previousEventId": 3},
            {"timestamp": "2024-11-29T10:00:00.100Z", "type": "ExecutionTimedOut", "id": 5, "previousEventId": 4,
             "executionTimedOutEventDetails": {}}
        ]});
        let events = events_from_json(&response).unwrap();
        assert_eq!(events[1].timestamp, Some(1_732_870_800.2));
        let d = diagnose(&arn(), &events);
        assert_eq!(d.state.as_deref(), Some("PullApolloFull"));
        assert_eq!(d.error.as_deref(), Some("States.Timeout"));
        assert_eq!(d.timeout_kind, Some(TimeoutKind::Execution));
        assert!(d.refuse_timeout_raise(300).unwrap().contains("execution"));
    }

    #[test]
    fn a_completed_parallel_before_the_failed_state_is_not_its_container() {
        // Fetch (a Parallel that succeeded) then Store fails: Store is at the top level.
        let response = serde_json::json!({"events": [
            {"type": "ExecutionStarted", "id": 1, "previousEventId": 0},
            {"type": "ParallelStateEntered", "id": 2, "previousEventId": 0, "stateEnteredEventDetails": {"name": "Fetch"}},
            {"type": "ParallelStateStarted", "id": 3, "previousEventId": 2},
            {"type": "PassStateEntered", "id": 4, "previousEventId": 3, "stateEnteredEventDetails": {"name": "A"}},
            {"type": "PassStateExited", "id": 5, "previousEventId": 4},
            {"type": "ParallelStateSucceeded", "id": 6, "previousEventId": 5},
            {"type": "ParallelStateExited", "id": 7, "previousEventId": 6},
            {"type": "TaskStateEntered", "id": 8, "previousEventId": 7, "stateEnteredEventDetails": {"name": "Store"}},
            {"type": "TaskScheduled", "id": 9, "previousEventId": 8,
             "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke",
               "parameters": "{\"FunctionName\":\"thera-pipeline-prod-store\"}"}},
            {"type": "TaskStarted", "id": 10, "previousEventId": 9},
            {"type": "TaskFailed", "id": 11, "previousEventId": 10, "taskFailedEventDetails": {"error": "Boom"}},
            {"type": "ExecutionFailed", "id": 12, "previousEventId": 11, "executionFailedEventDetails": {"error": "Boom"}}
        ]});
        let d = diagnose(&arn(), &events_from_json(&response).unwrap());
        assert_eq!(d.state.as_deref(), Some("Store"));
        assert_eq!(d.parent_state, None);
        assert_eq!(d.branch, None);
    }

    #[test]
    fn an_empty_history_diagnoses_nothing() {
        assert_eq!(diagnose(&arn(), &[]), Diagnosis::default());
    }
}
