//! The EventBridge rules a deployment must subscribe remediator to, derived from the
//! policies so that the subscription can never be narrower than what a policy matches.
//!
//! A policy's pattern is matched against the incident document (the event plus
//! remediator's `diagnosis`). EventBridge only sees the event, so each rule keeps the
//! pattern's event-level fields and drops `diagnosis` and any top-level `$or` (dropping a
//! constraint only widens a pattern). Policies whose patterns reduce to the same rule
//! share it.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::event::{ALARM_SOURCE, SFN_SOURCE, SFN_STATUS_CHANGE};
use crate::policy::PolicySet;

/// One EventBridge rule: its pattern and the policies that need it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Rule {
    pub name: String,
    pub policies: Vec<String>,
    #[serde(rename = "eventPattern")]
    pub pattern: Value,
}

/// Derives the rules for a policy set.
pub fn rules(policies: &PolicySet) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for p in policies.policies() {
        let pattern = event_level(&p.pattern_json);
        match out.iter_mut().find(|r| r.pattern == pattern) {
            Some(rule) => rule.policies.push(p.name.clone()),
            None => out.push(Rule { name: String::new(), policies: vec![p.name.clone()], pattern }),
        }
    }
    // Retries remediator makes are verified by their own end: subscribe to the
    // successes of redriven runs and of executions it started, and nothing else.
    let retries =
        policies.policies().iter().any(|p| p.actions.iter().any(|a| matches!(a.name(), "redrive" | "start-execution")));
    if retries {
        out.push(Rule {
            name: String::new(),
            policies: vec!["(verification of retries)".into()],
            pattern: json!({
                "source": [SFN_SOURCE],
                "detail-type": [SFN_STATUS_CHANGE],
                "detail": {
                    "status": ["SUCCEEDED"],
                    "$or": [
                        {"redriveCount": [{"numeric": [">", 0]}]},
                        {"name": [{"wildcard": "*-rmd*-*"}]}
                    ]
                }
            }),
        });
    }
    // An alarm's incident closes when the alarm returns to OK: subscribe to that
    // transition of exactly the alarms the policies watch (their pattern, with the state
    // OK after ALARM), and nothing else.
    for p in policies.policies() {
        let pattern = event_level(&p.pattern_json);
        let is_alarm =
            pattern.get("source").and_then(Value::as_array).is_some_and(|s| s.contains(&json!(ALARM_SOURCE)));
        if !is_alarm {
            continue;
        }
        let mut back_to_ok = pattern;
        if let Some(detail) = back_to_ok.get_mut("detail").and_then(Value::as_object_mut) {
            detail.insert("state".into(), json!({"value": ["OK"]}));
            detail.insert("previousState".into(), json!({"value": ["ALARM"]}));
        } else {
            back_to_ok["detail"] = json!({"state": {"value": ["OK"]}, "previousState": {"value": ["ALARM"]}});
        }
        if !out.iter().any(|r| r.pattern == back_to_ok) {
            out.push(Rule {
                name: String::new(),
                policies: vec![format!("(alarm back to OK: {})", p.name)],
                pattern: back_to_ok,
            });
        }
    }
    for (i, rule) in out.iter_mut().enumerate() {
        let label = match rule.policies[0].as_str() {
            l if l.starts_with("(alarm") => "alarm-ok",
            l if l.starts_with('(') => "verify-retries",
            l => l,
        };
        rule.name = format!("remediator-{}-{label}", i + 1);
        rule.name.truncate(64);
    }
    out
}

fn event_level(pattern: &Value) -> Value {
    let mut fields: Map<String, Value> = pattern
        .as_object()
        .map(|o| {
            o.iter().filter(|(k, _)| *k != "diagnosis" && *k != "$or").map(|(k, v)| (k.clone(), v.clone())).collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        // Only `diagnosis` constrains it, and only Step Functions failures are diagnosed.
        fields.insert("source".into(), json!([SFN_SOURCE]));
        fields.insert("detail-type".into(), json!([SFN_STATUS_CHANGE]));
        fields.insert("detail".into(), json!({"status": ["FAILED", "TIMED_OUT"]}));
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Pattern;

    fn set(text: &str) -> PolicySet {
        PolicySet::from_sources(&[("p.yaml".into(), text.into())]).unwrap()
    }

    #[test]
    fn rules_drop_diagnosis_and_share_identical_patterns() {
        let s = set("policies:
  - {name: a, match: {source: [aws.states], detail: {status: [FAILED]}, diagnosis: {error: [X]}}, actions: [notify]}
  - {name: b, match: {source: [aws.states], detail: {status: [FAILED]}, diagnosis: {error: [Y]}}, actions: [notify]}
  - {name: c, match: {source: [aws.s3], detail-type: [Object Deleted]}, actions: [notify]}
");
        let r = rules(&s);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].policies, ["a", "b"]);
        assert_eq!(r[0].pattern, json!({"source": ["aws.states"], "detail": {"status": ["FAILED"]}}));
    }

    #[test]
    fn retries_are_verified_by_a_rule_for_their_successes_only() {
        let s = set("policies:\n  - {name: a, match: {source: [aws.states]}, actions: [redrive]}\n");
        let r = rules(&s);
        let verify = Pattern::from_json(&r.last().unwrap().pattern).unwrap();
        let event = |name: &str, status: &str, redrives: u32| {
            json!({"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
                   "detail": {"name": name, "status": status, "redriveCount": redrives}})
        };
        assert!(verify.matches(&event("run-1-rmd1-0a1b2c3d", "SUCCEEDED", 0)));
        assert!(verify.matches(&event("run-1", "SUCCEEDED", 1)));
        assert!(!verify.matches(&event("run-1", "SUCCEEDED", 0)));
        assert!(!verify.matches(&event("run-1-rmd1-0a1b2c3d", "FAILED", 0)));
    }

    // Issue 10, item 15: the deployment subscribes to the OK transition of the alarms
    // remediator opens incidents for, so that OK can close them.
    #[test]
    fn the_alarms_the_policies_watch_are_followed_back_to_ok() {
        let set = crate::config::PolicySource::Bundled.load().unwrap();
        let ok_event = |function: &str| {
            json!({
                "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
                "detail": {
                    "alarmName": "errors", "state": {"value": "OK"}, "previousState": {"value": "ALARM"},
                    "configuration": {"metrics": [{"metricStat": {"metric": {"namespace": "AWS/Lambda", "name": "Errors",
                        "dimensions": {"FunctionName": function}}}}]}
                }
            })
        };
        let matching = |event: &Value| {
            rules(&set).into_iter().filter(|r| Pattern::from_json(&r.pattern).unwrap().matches(event)).count()
        };
        assert_eq!(matching(&ok_event("thera-pipeline-prod-apollo-delta-pull")), 1);
        assert_eq!(matching(&ok_event("another-team-function")), 0, "only the alarms the policies watch");
        let mut insufficient = ok_event("thera-pipeline-prod-apollo-delta-pull");
        insufficient["detail"]["previousState"]["value"] = json!("INSUFFICIENT_DATA");
        assert_eq!(matching(&insufficient), 0, "OK after ALARM only");
    }

    #[test]
    fn a_rule_is_never_narrower_than_its_policy() {
        let s = set("policies:
  - name: a
    match:
      source: [aws.states]
      $or: [{detail: {status: [FAILED]}}, {diagnosis: {error: [X]}}]
    actions: [notify]
");
        let rule = Pattern::from_json(&rules(&s)[0].pattern).unwrap();
        let policy = &s.policies()[0].pattern;
        for doc in [
            json!({"source": "aws.states", "detail": {"status": "FAILED"}}),
            json!({"source": "aws.states", "detail": {"status": "RUNNING"}, "diagnosis": {"error": "X"}}),
        ] {
            assert!(policy.matches(&doc));
            let mut event = doc.clone();
            event.as_object_mut().unwrap().remove("diagnosis");
            assert!(rule.matches(&event), "the rule must deliver {event}");
        }
    }
}
