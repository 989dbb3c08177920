//! The JSON Schema of policy files, generated from Rust types, so editors validate and
//! complete policies (`policies/schema.json`, written by `remediator schema`).
//!
//! The loader reads YAML by hand (for positions), so these types describe the same format
//! for the schema only; tests check that their keys, action names, parameters and numeric
//! bounds are exactly the loader's (the bounds are the loader's constants), and that
//! `policies/schema.json` is not stale.
#![allow(dead_code)]

use schemars::JsonSchema;
use serde_json::Value;

use crate::policy::{
    FACTOR_ABOVE, FACTOR_MAX, LAMBDA_MEMORY_MAX_MB, LAMBDA_MEMORY_MIN_MB, LAMBDA_TIMEOUT_MAX_SECONDS,
    LAMBDA_TIMEOUT_MIN_SECONDS, MAX_ATTEMPTS_MAX, MAX_ATTEMPTS_MIN, NAME_MAX_LEN, PRIORITY_MAX, PRIORITY_MIN,
};

/// What the loader accepts as a policy name.
fn name_pattern() -> String {
    format!("^[a-z0-9-]{{1,{NAME_MAX_LEN}}}$")
}

/// A policy file.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "remediator policy file")]
struct PolicyFile {
    /// The policies of this file, evaluated by priority across the directory.
    #[schemars(length(min = 1))]
    policies: Vec<PolicyDoc>,
}

/// One policy.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    /// Unique across the policy directory.
    #[schemars(regex(pattern = name_pattern()))]
    name: String,
    description: Option<String>,
    /// Lower first; default 1000; ties by file path, then list order.
    #[schemars(range(min = PRIORITY_MIN, max = PRIORITY_MAX))]
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
    #[schemars(range(min = MAX_ATTEMPTS_MIN, max = MAX_ATTEMPTS_MAX))]
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
    /// Multiplier of the timeout in force (default 1.5); above 1.
    #[schemars(range(max = FACTOR_MAX), extend("exclusiveMinimum" = FACTOR_ABOVE))]
    factor: Option<f64>,
    /// Cap in seconds (default and Lambda maximum 900).
    #[schemars(range(min = LAMBDA_TIMEOUT_MIN_SECONDS, max = LAMBDA_TIMEOUT_MAX_SECONDS))]
    max_seconds: Option<u32>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct RaiseMemoryParams {
    /// Multiplier of the memory in force (default 2); above 1.
    #[schemars(range(max = FACTOR_MAX), extend("exclusiveMinimum" = FACTOR_ABOVE))]
    factor: Option<f64>,
    /// Cap in MB (default and Lambda maximum 10240).
    #[schemars(range(min = LAMBDA_MEMORY_MIN_MB, max = LAMBDA_MEMORY_MAX_MB))]
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
    let mut text = serde_json::to_string_pretty(&sorted(non_nullable(schema))).expect("a schema serializes");
    text.push('\n');
    text
}

/// The schema without `null` as a value of optional keys: schemars allows it for
/// `Option`, but the loader refuses a key set to null (leave the key out instead).
fn non_nullable(value: Value) -> Value {
    let is_null_schema = |v: &Value| v.get("type") == Some(&Value::from("null"));
    match value {
        Value::Object(mut map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if let Some(Value::Array(branches)) = map.get_mut("anyOf") {
                branches.retain(|b| !is_null_schema(b));
                if branches.len() == 1 {
                    if let Some(Value::Array(mut branches)) = map.remove("anyOf") {
                        if let Value::Object(only) = branches.remove(0) {
                            map.extend(only);
                        }
                    }
                }
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, non_nullable(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(non_nullable).collect()),
        other => other,
    }
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
    use crate::policy::{action_parameters, PolicySet, ACTION_NAMES, POLICY_KEYS};

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

    fn loads(policy: &str) -> bool {
        let text = format!("policies:\n  - {{name: a, match: {{source: [x]}}, {policy}}}\n");
        PolicySet::from_sources(&[("p.yaml".into(), text)]).is_ok()
    }

    /// Each numeric field: where the schema states its bounds, and a policy (with `{}`
    /// for the value) that the loader checks.
    const NUMERIC_FIELDS: &[(&str, &str, &str)] = &[
        ("PolicyDoc", "priority", "actions: [notify], priority: {}"),
        ("LimitsDoc", "max_attempts", "actions: [notify], limits: {max_attempts: {}}"),
        ("RaiseTimeoutParams", "factor", "actions: [{raise-timeout: {factor: {}}}]"),
        ("RaiseTimeoutParams", "max_seconds", "actions: [{raise-timeout: {max_seconds: {}}}]"),
        ("RaiseMemoryParams", "factor", "actions: [{raise-memory: {factor: {}}}]"),
        ("RaiseMemoryParams", "max_mb", "actions: [{raise-memory: {max_mb: {}}}]"),
    ];

    #[test]
    fn the_schema_states_the_loaders_numeric_bounds() {
        let s = schema();
        let field = |def: &str, prop: &str| s["$defs"][def]["properties"][prop].clone();
        let range = |def: &str, prop: &str| {
            let f = field(def, prop);
            (f["minimum"].as_f64(), f["exclusiveMinimum"].as_f64(), f["maximum"].as_f64())
        };
        assert_eq!(range("PolicyDoc", "priority"), (Some(PRIORITY_MIN as f64), None, Some(PRIORITY_MAX as f64)));
        assert_eq!(
            range("LimitsDoc", "max_attempts"),
            (Some(MAX_ATTEMPTS_MIN as f64), None, Some(MAX_ATTEMPTS_MAX as f64))
        );
        for def in ["RaiseTimeoutParams", "RaiseMemoryParams"] {
            assert_eq!(range(def, "factor"), (None, Some(FACTOR_ABOVE), Some(FACTOR_MAX)), "{def}");
        }
        assert_eq!(
            range("RaiseTimeoutParams", "max_seconds"),
            (Some(LAMBDA_TIMEOUT_MIN_SECONDS as f64), None, Some(LAMBDA_TIMEOUT_MAX_SECONDS as f64))
        );
        assert_eq!(
            range("RaiseMemoryParams", "max_mb"),
            (Some(LAMBDA_MEMORY_MIN_MB as f64), None, Some(LAMBDA_MEMORY_MAX_MB as f64))
        );
        assert_eq!(field("PolicyDoc", "name")["pattern"], format!("^[a-z0-9-]{{1,{NAME_MAX_LEN}}}$"));
        assert_eq!(s["properties"]["policies"]["minItems"], 1, "the loader refuses an empty `policies`");
        assert_eq!(field("PolicyDoc", "actions")["minItems"], 1, "the loader refuses empty `actions`");
    }

    #[test]
    fn the_loader_accepts_exactly_what_the_schemas_bounds_allow() {
        let s = schema();
        for (def, prop, template) in NUMERIC_FIELDS {
            let f = &s["$defs"][def]["properties"][prop];
            let integer = f["type"] == "integer";
            let step = if integer { 1.0 } else { 0.001 };
            let with = |v: f64| loads(&template.replace("{}", &v.to_string()));
            match (f["minimum"].as_f64(), f["exclusiveMinimum"].as_f64()) {
                (Some(min), None) => {
                    assert!(with(min), "{def}.{prop}: the schema allows {min}");
                    assert!(!with(min - step), "{def}.{prop}: the schema refuses {}", min - step);
                }
                (None, Some(above)) => {
                    assert!(!with(above), "{def}.{prop}: the schema refuses {above}");
                    assert!(with(above + step), "{def}.{prop}: the schema allows {}", above + step);
                }
                other => panic!("{def}.{prop}: no lower bound in the schema: {other:?}"),
            }
            let max = f["maximum"].as_f64().unwrap_or_else(|| panic!("{def}.{prop}: no maximum in the schema"));
            assert!(with(max), "{def}.{prop}: the schema allows {max}");
            assert!(!with(max + step), "{def}.{prop}: the schema refuses {}", max + step);
            if integer {
                assert!(!with(max - 0.5), "{def}.{prop}: the schema refuses fractions");
            }
        }
    }

    #[test]
    fn optional_fields_are_not_nullable_since_the_loader_refuses_null() {
        assert!(!loads("actions: [notify], description: null"));
        assert!(!loads("actions: [notify], limits: {window: null}"));
        let text = policy_schema();
        assert!(!text.contains("\"null\""), "the schema allows null somewhere:\n{text}");
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
