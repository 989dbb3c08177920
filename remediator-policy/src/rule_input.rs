//! What a rule's target receives when its schedule fires: the scheduled event
//! EventBridge would have sent, passed through the target's `Input`, `InputPath` or
//! `InputTransformer`. A catch-up run must start with exactly that input, or it is not
//! the run that was missed.
//!
//! The JSON paths are EventBridge's subset: `$`, dot notation and array indices. A
//! template's placeholder is replaced by the value's JSON, except a string inside a JSON
//! string (or anywhere in a text template), which is inserted as its text.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// How a target's input is configured (at most one of the three is set). Its `Debug`
/// shows which, never the constant input or the template (they may hold secrets).
#[derive(Clone, Default, PartialEq)]
pub struct TargetInput {
    pub input: Option<String>,
    pub input_path: Option<String>,
    /// `InputPathsMap` and `InputTemplate`.
    pub transformer: Option<(BTreeMap<String, String>, String)>,
}

impl std::fmt::Debug for TargetInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match (&self.input, &self.input_path, &self.transformer) {
            (Some(_), _, _) => "Input [redacted]",
            (None, Some(_), _) => "InputPath",
            (None, None, Some(_)) => "InputTransformer [redacted]",
            (None, None, None) => "the whole event",
        };
        write!(f, "TargetInput({kind})")
    }
}

/// Why the input could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("JSON path `{0}` is not one EventBridge evaluates ($, dot notation, array indices)")]
    Path(String),
    #[error("input template placeholder `<{0}>` is not in InputPathsMap")]
    Placeholder(String),
    #[error("the target's constant Input is not JSON: {0}")]
    Input(String),
}

/// The "Scheduled Event" a rule sends when its schedule fires at `at`.
pub fn scheduled_event(rule_arn: &str, at: i64) -> Value {
    let mut parts = rule_arn.split(':');
    let region = parts.nth(3).unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    // EventBridge's ids are random; a fixed one keeps the catch-up's input deterministic.
    let id = crate::schedule::catch_up_name(rule_arn, at);
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": crate::event::format_timestamp(at),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    })
}

impl TargetInput {
    /// The text the target receives for `event` from the rule `rule_arn`.
    pub fn render(&self, event: &Value, rule_arn: &str) -> Result<String, InputError> {
        if let Some(input) = &self.input {
            // Constant JSON: passed as it is, checked so a broken one is reported.
            serde_json::from_str::<Value>(input).map_err(|e| InputError::Input(e.to_string()))?;
            return Ok(input.clone());
        }
        if let Some(path) = &self.input_path {
            return Ok(select(event, path)?.map_or_else(|| "null".to_string(), Value::to_string));
        }
        let Some((paths, template)) = &self.transformer else {
            return Ok(event.to_string());
        };
        let mut values: BTreeMap<&str, Value> = BTreeMap::new();
        for (name, path) in paths {
            values.insert(name, select(event, path)?.cloned().unwrap_or(Value::Null));
        }
        let rule_name = rule_arn.rsplit('/').next().unwrap_or_default();
        let mut without_detail = event.clone();
        if let Some(obj) = without_detail.as_object_mut() {
            obj.remove("detail");
        }
        let predefined = [
            ("aws.events.rule-arn", Value::from(rule_arn)),
            ("aws.events.rule-name", Value::from(rule_name)),
            ("aws.events.event.ingestion-time", event.get("time").cloned().unwrap_or(Value::Null)),
            ("aws.events.event", without_detail),
            ("aws.events.event.json", event.clone()),
        ];
        for (name, value) in predefined {
            values.insert(name, value);
        }
        fill(template, &values)
    }
}

/// `$.a.b[0]` applied to `doc`; `None` where the path leads nowhere.
fn select<'v>(doc: &'v Value, path: &str) -> Result<Option<&'v Value>, InputError> {
    let bad = || InputError::Path(path.to_string());
    let rest = path.trim().strip_prefix('$').ok_or_else(bad)?;
    let mut at = doc;
    let mut chars = rest;
    while !chars.is_empty() {
        if let Some(r) = chars.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err(bad());
            }
            match at.get(key) {
                Some(v) => at = v,
                None => return Ok(None),
            }
            chars = &r[end..];
        } else if let Some(r) = chars.strip_prefix('[') {
            let (index, after) = r.split_once(']').ok_or_else(bad)?;
            let index: usize = index.trim().parse().map_err(|_| bad())?;
            match at.get(index) {
                Some(v) => at = v,
                None => return Ok(None),
            }
            chars = after;
        } else {
            return Err(bad());
        }
    }
    Ok(Some(at))
}

/// Replaces each `<name>` of `template` with its value.
fn fill(template: &str, values: &BTreeMap<&str, Value>) -> Result<String, InputError> {
    let json_template = matches!(template.trim_start().chars().next(), Some('{' | '['));
    let mut out = String::with_capacity(template.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(end) = rest.find('>') {
                let name = &rest[1..end];
                let is_name =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
                if is_name {
                    let value = values.get(name).ok_or_else(|| InputError::Placeholder(name.to_string()))?;
                    match value {
                        Value::String(s) if in_string => {
                            let quoted = Value::from(s.as_str()).to_string();
                            out.push_str(&quoted[1..quoted.len() - 1]);
                        }
                        Value::String(s) if !json_template => out.push_str(s),
                        other => out.push_str(&other.to_string()),
                    }
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        if json_template {
            if escaped {
                escaped = false;
            } else if c == '\\' && in_string {
                escaped = true;
            } else if c == '"' {
                in_string = !in_string;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "arn:aws:events:us-east-1:123456789012:rule/thera-pipeline-daily-rule";

    fn event() -> Value {
        scheduled_event(RULE, crate::event::parse_timestamp("2026-11-29T09:00:00Z").unwrap())
    }

    #[test]
    fn the_scheduled_event_is_the_one_eventbridge_sends() {
        let e = event();
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["source"], "aws.events");
        assert_eq!(e["time"], "2026-11-29T09:00:00Z");
        assert_eq!(e["account"], "123456789012");
        assert_eq!(e["region"], "us-east-1");
        assert_eq!(e["resources"], json!([RULE]));
        assert_eq!(e, event(), "deterministic");
    }

    #[test]
    fn constant_input_path_and_whole_event() {
        let constant = TargetInput { input: Some(r#"{"mode":"daily"}"#.into()), ..TargetInput::default() };
        assert_eq!(constant.render(&event(), RULE).unwrap(), r#"{"mode":"daily"}"#);
        let broken = TargetInput { input: Some("{mode".into()), ..TargetInput::default() };
        assert!(matches!(broken.render(&event(), RULE), Err(InputError::Input(_))));
        let path = TargetInput { input_path: Some("$.resources[0]".into()), ..TargetInput::default() };
        assert_eq!(path.render(&event(), RULE).unwrap(), format!("\"{RULE}\""));
        let detail = TargetInput { input_path: Some("$.detail".into()), ..TargetInput::default() };
        assert_eq!(detail.render(&event(), RULE).unwrap(), "{}");
        let whole = TargetInput::default().render(&event(), RULE).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&whole).unwrap(), event());
        let bad = TargetInput { input_path: Some("detail".into()), ..TargetInput::default() };
        assert_eq!(bad.render(&event(), RULE), Err(InputError::Path("detail".into())));
    }

    #[test]
    fn transformer_fills_json_and_text_templates() {
        let paths =
            BTreeMap::from([("time".to_string(), "$.time".to_string()), ("r".to_string(), "$.resources".to_string())]);
        let json_template = r#"{"runAt": <time>, "label": "run at <time> by <aws.events.rule-name>", "rules": <r>}"#;
        let t = TargetInput { transformer: Some((paths.clone(), json_template.into())), ..TargetInput::default() };
        let out: Value = serde_json::from_str(&t.render(&event(), RULE).unwrap()).unwrap();
        assert_eq!(out["runAt"], "2026-11-29T09:00:00Z");
        assert_eq!(out["label"], "run at 2026-11-29T09:00:00Z by thera-pipeline-daily-rule");
        assert_eq!(out["rules"], json!([RULE]));
        let text = TargetInput { transformer: Some((paths.clone(), "run at <time>".into())), ..TargetInput::default() };
        assert_eq!(text.render(&event(), RULE).unwrap(), "run at 2026-11-29T09:00:00Z");
        let unknown = TargetInput { transformer: Some((paths, "{\"a\": <nope>}".into())), ..TargetInput::default() };
        assert_eq!(unknown.render(&event(), RULE), Err(InputError::Placeholder("nope".into())));
    }
}
