//! The JSON Schema of policy files, generated from Rust types, so editors validate and
//! complete policies (`policies/schema.json`, written by `remediator schema`).
//!
//! The loader reads YAML by hand (for positions), so these types describe the same format
//! for the schema only; a test checks that their keys, action names and parameters are
//! exactly the loader's, and another that `policies/schema.json` is not stale.
#![allow(dead_code)]

use schemars::JsonSchema;
use serde_json::Value;

/// A policy file.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "remediator policy file")]
struct PolicyFile {
    /// The policies of this file, evaluated by priority across the directory.
    policies: Vec<PolicyDoc>,
}

/// One policy.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    /// Unique across the policy directory.
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,64}$"))]
    name: String,
    description: Option<String>,
    /// Lower first; default 1000; ties by file path, then list order.
    priority: Option<i64>,
    /// An EventBridge event pattern, matched against the event plus `diagnosis`.
    #[serde(rename = "match")]
    pattern: serde_json::Map<String, Value>,
    /// Ordered steps; each a name or a one-key mapping of name to parameters.
    #[schemars(length(min = 1))]
    actions: Vec<ActionDoc>,
    limits: Option<LimitsDoc>,
    /// When a summary is sent (default on-action).
    notify: Option<NotifyDoc>,
    dry_run: Option<bool>,
    /// Shown in summaries: what a person should check.
    runbook: Option<String>,
    /// true: later matching policies apply too.
    #[serde(rename = "continue")]
    continue_: Option<bool>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum NotifyDoc {
    Always,
    OnAction,
    OnFailure,
    Never,
}

/// A duration: a number with a unit (ms, s, m, h, d), e.g. 90s, 5m, 1h30m.
#[derive(JsonSchema)]
struct DurationDoc(#[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))] String);

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct LimitsDoc {
    /// Attempts per policy and target within `window` (default 3).
    #[schemars(range(min = 1, max = 100))]
    max_attempts: Option<u32>,
    window: Option<DurationDoc>,
    cooldown: Option<DurationDoc>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
enum ActionDoc {
    Bare(ActionName),
    WithParameters(ActionWithParameters),
}

#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum ActionName {
    Redrive,
    StartExecution,
    RaiseTimeout,
    RaiseMemory,
    EnableRule,
    RestoreObject,
    Notify,
}

#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum ActionWithParameters {
    Redrive(RedriveParams),
    StartExecution(StartParams),
    RaiseTimeout(RaiseTimeoutParams),
    RaiseMemory(RaiseMemoryParams),
    EnableRule(EnableRuleParams),
    RestoreObject(RestoreObjectParams),
    Notify(NotifyParams),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct RedriveParams {
    /// Wait before redriving (default 0s).
    delay: Option<DurationDoc>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct StartParams {
    /// Default: the failed execution's state machine.
    state_machine: Option<String>,
    /// Default: the failed execution's input.
    input: Option<Value>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct RaiseTimeoutParams {
    /// Multiplier of the timeout in force (default 1.5).
    #[schemars(range(min = 1.0, max = 10.0))]
    factor: Option<f64>,
    /// Cap in seconds (default and Lambda maximum 900).
    #[schemars(range(min = 1, max = 900))]
    max_seconds: Option<u32>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct RaiseMemoryParams {
    /// Multiplier of the memory in force (default 2).
    #[schemars(range(min = 1.0, max = 10.0))]
    factor: Option<f64>,
    /// Cap in MB (default and Lambda maximum 10240).
    #[schemars(range(min = 128, max = 10240))]
    max_mb: Option<u32>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct EnableRuleParams {
    /// Default: the rule named by the event.
    rule: Option<String>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct RestoreObjectParams {
    /// Default: from the diagnosis or the event.
    bucket: Option<String>,
    key: Option<String>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct NotifyParams {
    severity: Option<SeverityDoc>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum SeverityDoc {
    Info,
    Warning,
    Critical,
}

/// The schema as pretty JSON, ending with a newline.
pub fn policy_schema() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(PolicyFile)).expect("a schema serializes");
    // Keys sorted, so the text does not depend on serde_json's map ordering feature.
    let mut text = serde_json::to_string_pretty(&sorted(schema)).expect("a schema serializes");
    text.push('\n');
    text
}

/// A value with every object's keys sorted (stable text whatever serde_json's map
/// ordering feature).
pub fn sorted_value(value: Value) -> Value {
    sorted(value)
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{action_parameters, ACTION_NAMES, POLICY_KEYS};

    fn schema() -> Value {
        serde_json::from_str(&policy_schema()).unwrap()
    }

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    #[test]
    fn the_schema_names_exactly_the_keys_the_loader_accepts() {
        let s = schema();
        let mut expected: Vec<String> = POLICY_KEYS.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(keys(&s["$defs"]["PolicyDoc"]["properties"]), expected);
    }

    #[test]
    fn the_schema_names_exactly_the_actions_and_parameters_the_loader_accepts() {
        let s = schema();
        let mut names: Vec<String> = s["$defs"]["ActionName"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        names.sort();
        let mut expected: Vec<String> = ACTION_NAMES.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(names, expected);
        for variant in s["$defs"]["ActionWithParameters"]["oneOf"].as_array().unwrap() {
            let (action, params) = variant["properties"].as_object().unwrap().iter().next().unwrap();
            let reference = params["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            let mut got = keys(&s["$defs"][reference]["properties"]);
            got.sort();
            let mut want: Vec<String> = action_parameters(action).unwrap().iter().map(|p| p.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "parameters of {action}");
        }
    }

    #[test]
    fn policies_schema_json_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/schema.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == policy_schema(),
            "policies/schema.json is stale: run `remediator schema > policies/schema.json`"
        );
    }
}
