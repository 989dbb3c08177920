//! The JSON Schema of policy files (`policies/schema.json`, written by `remediator
//! schema`), so editors validate and complete policies.
//!
//! It is derived from the types the loader deserializes policies into
//! ([`crate::policy::PolicyFile`] and the parameter types in [`crate::action`]), so the
//! two cannot drift: a key, an action, a parameter or a bound exists in both or in
//! neither. The tests below check the few places where that needs more than a derive.

use serde_json::Value;

use crate::policy::{PolicyDoc, PolicyFile};

/// The schema as pretty JSON, ending with a newline.
pub fn policy_schema() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(PolicyFile<PolicyDoc>)).expect("a schema serializes");
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
    use crate::policy::*;

    fn schema() -> Value {
        serde_json::from_str(&policy_schema()).unwrap()
    }

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    }

    fn load(policy: &str) -> Result<PolicySet, PolicyErrors> {
        let text = format!("policies:\n  - {{name: a, match: {{source: [x]}}, {policy}}}\n");
        PolicySet::from_sources(&[("p.yaml".into(), text)])
    }

    fn loads(policy: &str) -> bool {
        load(policy).is_ok()
    }

    /// The keys the loader accepts in a mapping: the list its unknown-key error gives.
    fn accepted_keys(policy: &str) -> Vec<String> {
        let errors = load(policy).unwrap_err().0;
        let hint = errors.iter().find_map(|e| e.hint.as_deref()).unwrap();
        if hint.starts_with("it takes no parameters") {
            return Vec::new();
        }
        let hint = hint.strip_prefix("allowed: ").unwrap();
        let mut k: Vec<String> = hint.split(", ").map(str::to_string).collect();
        k.sort();
        k
    }

    #[test]
    fn the_schema_names_exactly_the_keys_the_loader_accepts() {
        let s = schema();
        assert_eq!(keys(&s["$defs"]["PolicyDoc"]["properties"]), accepted_keys("actions: [notify], zzzzzzzz: 1"));
        assert_eq!(
            keys(&s["$defs"]["LimitsDoc"]["properties"]),
            accepted_keys("actions: [notify], limits: {zzzzzzzz: 1}")
        );
    }

    #[test]
    fn the_schema_names_exactly_the_actions_and_parameters_the_loader_accepts() {
        let s = schema();
        let bare: Vec<&str> =
            s["$defs"]["Action"]["anyOf"][0]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(bare, action_names());
        assert_eq!(bare.len(), 8);
        let with_parameters = s["$defs"]["Action"]["anyOf"][1]["oneOf"].as_array().unwrap();
        assert_eq!(with_parameters.len(), bare.len());
        for (variant, name) in with_parameters.iter().zip(&bare) {
            assert!(loads(&format!("actions: [{name}]")), "{name} alone");
            let params = &variant["properties"][*name]["$ref"];
            let reference = params.as_str().unwrap().rsplit('/').next().unwrap();
            let got = keys(&s["$defs"][reference]["properties"]);
            let want = accepted_keys(&format!("actions: [{{{name}: {{zzzzzzzz: 1}}}}]"));
            assert_eq!(got, want, "parameters of {name}");
        }
        assert!(!loads("actions: [restart]"));
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
        assert_eq!(
            keys(
                &s["$defs"]["PolicyDoc"]["required"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .map(|k| (k.as_str().unwrap().to_string(), Value::Null))
                            .collect::<serde_json::Map<_, _>>()
                    })
                    .map(Value::Object)
                    .unwrap()
            ),
            ["actions", "match", "name"]
        );
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
