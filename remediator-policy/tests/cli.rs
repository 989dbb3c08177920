//! The SDK-free policy tools as a policy author runs them: `remediator-policy`, built
//! from this crate alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tool(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_remediator-policy")).args(args).current_dir(dir).output().unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_shipped_policies_validate_and_their_cases_pass() {
    let out = tool(&["validate"], &repo());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("policies OK"));
    let out = tool(&["test"], &repo());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(" passed, 0 failed"), "{}", text(&out));
}

#[test]
fn a_broken_policy_is_reported_with_positions_and_fails() {
    let dir = tempdir();
    std::fs::write(dir.join("p.yaml"), "policies:\n  - name: a\n    match: {source: [x]}\n    actions: [redrve]\n")
        .unwrap();
    let out = tool(&["validate", "--policies", "p.yaml"], &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("p.yaml:4:15: policy `a`: unknown action `redrve` (hint: did you mean `redrive`?)"));
}

#[test]
fn explain_and_plan_read_events_and_write_json_lines() {
    let dir = tempdir();
    let failed = r#"{"id":"e1","source":"aws.events","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","detail":{"eventSource":"events.amazonaws.com","eventName":"DisableRule","requestParameters":{"name":"thera-pipeline-daily-rule"},"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::123456789012:assumed-role/ops/maria"}}}"#;
    std::fs::write(dir.join("events.ndjson"), format!("{failed}\nnot json\n")).unwrap();
    let policies = repo().join("policies");
    let policies = policies.to_str().unwrap();
    let out = tool(&["explain", "--policies", policies, "--events", "events.ndjson"], &dir);
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{}", text(&out));
    assert_eq!(lines[0]["actions"][0]["action"], "enable-rule", "{}", lines[0]);
    assert!(lines[1]["error"].as_str().unwrap().contains("not valid JSON"));
    assert_eq!(out.status.code(), Some(1), "one event could not be explained");
    let out = tool(&["plan", "--base", policies, "--head", policies, "--events", "events.ndjson"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(
        summary["summary"],
        serde_json::json!({"events": 2, "changed": 0, "unchanged": 1, "malformed": 1, "touched": []}),
        "the same policies on both sides touch nothing"
    );
}

/// A fresh directory under the target directory (no tempfile dependency here).
fn tempdir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
