//! `remediator undo INCIDENT`: put back what an incident's remediation changed.
//!
//! Every change is recorded with its before-image (the old timeout or memory, the rule's
//! state, the delete marker removed). Undo reads them from the stored outcome and
//! reverses each, newest first. Retries of executions are not undone: a run cannot be
//! un-run.

use serde::Serialize;
use serde_json::Value;

use crate::apply::{FunctionSettings, ObjectVersions, Rules, Setting};
use crate::error::AwsError;
use crate::plan::split_object_arn;

/// One change to put back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reversal {
    pub action: String,
    pub target: String,
    pub description: String,
    #[serde(skip)]
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Setting(Setting),
    DisableRule(String),
    HideObject { bucket: String, key: String },
}

/// The reversals of a stored outcome's changes, newest first.
pub fn reversals(outcome: &Value) -> Vec<Reversal> {
    let mut out = Vec::new();
    for a in outcome.get("actions").and_then(Value::as_array).into_iter().flatten() {
        if a.get("result").and_then(Value::as_str) != Some("done") {
            continue;
        }
        let (Some(action), Some(target), Some(before)) =
            (a.get("action").and_then(Value::as_str), a.get("target").and_then(Value::as_str), a.get("before"))
        else {
            continue;
        };
        let number = |k: &str| before.get(k).and_then(Value::as_u64).map(|n| n as u32);
        let kind =
            match action {
                "raise-timeout" => number("timeout")
                    .map(|t| (Kind::Setting(Setting::Timeout(t)), format!("set the timeout back to {t}s"))),
                "raise-memory" => number("memory")
                    .map(|m| (Kind::Setting(Setting::Memory(m)), format!("set the memory back to {m} MB"))),
                "enable-rule" => target
                    .rsplit_once("rule/")
                    .map(|(_, name)| (Kind::DisableRule(name.to_string()), format!("disable rule {name} again"))),
                "restore-object" => split_object_arn(target).map(|(bucket, key)| {
                    (
                        Kind::HideObject { bucket: bucket.into(), key: key.into() },
                        format!("delete s3://{bucket}/{key} again (a new delete marker; the versions stay)"),
                    )
                }),
                _ => None,
            };
        if let Some((kind, description)) = kind {
            out.push(Reversal { action: action.to_string(), target: target.to_string(), description, kind });
        }
    }
    out.reverse();
    out
}

/// Applies a reversal.
pub async fn reverse(
    r: &Reversal,
    functions: &dyn FunctionSettings,
    rules: &dyn Rules,
    objects: &dyn ObjectVersions,
) -> Result<(), AwsError> {
    match &r.kind {
        Kind::Setting(setting) => functions.update(&r.target, *setting, None).await.map(|_| ()),
        Kind::DisableRule(name) => rules.disable(name).await,
        Kind::HideObject { bucket, key } => objects.delete_current(bucket, key).await,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_done_changes_with_a_before_image_are_reversed_newest_first() {
        let outcome = json!({"actions": [
            {"action": "raise-timeout", "target": "arn:aws:lambda:us-east-1:1:function:f", "result": "done", "before": {"timeout": 300}},
            {"action": "redrive", "target": "arn:aws:states:us-east-1:1:execution:m:r", "result": "done"},
            {"action": "enable-rule", "target": "arn:aws:events:us-east-1:1:rule/thera-pipeline-daily-rule", "result": "done", "before": {"state": "DISABLED"}},
            {"action": "restore-object", "target": "arn:aws:s3:::b/thera-pipeline/x.json", "result": "refused", "before": {}}
        ]});
        let r = reversals(&outcome);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].description, "disable rule thera-pipeline-daily-rule again");
        assert_eq!(r[1].description, "set the timeout back to 300s");
        assert_eq!(r[1].kind, Kind::Setting(Setting::Timeout(300)));
    }
}
