//! The policy tooling from the command line: validate, explain, test, plan, rules.
//! No AWS is involved (these commands never touch it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn remediator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_remediator"))
        .args(args)
        .current_dir(workspace())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn validate_lists_every_error_with_its_position_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "policies:\n  - name: a\n    match: {source: aws.states}\n    actions: [redrve]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        "policies:\n  - name: b\n    match: {source: [x]}\n    actions: [notify]\n    limts: {}\n",
    )
    .unwrap();
    let out = remediator(&["validate", "--policies", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("a.yaml:3:21: policy `a`: invalid pattern at `source`"), "{text}");
    assert!(
        text.contains("a.yaml:4:15: policy `a`: unknown action `redrve` (hint: did you mean `redrive`?)"),
        "{text}"
    );
    assert!(
        text.contains("b.yml:5:5: policy `b`: unknown key `limts` in a policy (hint: did you mean `limits`?)"),
        "{text}"
    );
}

#[test]
fn the_shipped_policies_validate_and_their_cases_pass() {
    let out = remediator(&["validate", "--policies", "policies"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = remediator(&["test", "--policies", "policies"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains(" passed, 0 failed"));
}

#[test]
fn a_failing_case_reports_what_was_expected_and_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "policies:\n  - {name: a, match: {source: [aws.s3]}, actions: [notify]}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("cases")).unwrap();
    std::fs::write(
        dir.path().join("cases/c.yaml"),
        "event: {id: '1', source: aws.s3, detail-type: Object Deleted, detail: {}}\nexpect: {policy: b, actions: [notify]}\n",
    )
    .unwrap();
    let out = remediator(&["test", "--policies", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("expected policy \"b\", got \"a\""), "{}", stdout(&out));
}

#[test]
fn explain_streams_ndjson_and_says_why_policies_did_not_match() {
    let failed =
        std::fs::read_to_string(workspace().join("policies/cases/fixtures/thera-daily-failed-2022.json")).unwrap();
    let one_line: serde_json::Value = serde_json::from_str(&failed).unwrap();
    let input = format!("{one_line}\n{{\"not\": \"an event\"}}\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_remediator"))
        .args([
            "explain",
            "--policies",
            "policies",
            "--events",
            "-",
            "--why",
            "--history",
            "policies/cases/fixtures/lambda-invoke-throttled.json",
        ])
        .current_dir(workspace())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["policy"], "redrive-transient-errors");
    assert_eq!(lines[0]["actions"][0]["action"], "redrive");
    assert_eq!(lines[0]["why"]["never-retry-auth-errors"], "$or[0]");
    assert!(lines[1]["error"].as_str().unwrap().contains("no `source` field"));
    assert_eq!(out.status.code(), Some(1), "a malformed event makes explain exit 1");
}

#[test]
fn plan_prints_the_decisions_a_policy_change_alters() {
    let head = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(workspace().join("policies/thera-pipeline.yaml")).unwrap();
    std::fs::write(
        head.path().join("p.yaml"),
        shipped.lines().filter(|l| l.trim() != "- Lambda.TooManyRequestsException").collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let events = head.path().join("events.ndjson");
    let event: serde_json::Value = serde_json::from_str(
        r#"{"id":"e1","source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{
        "executionArn":"arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:r1",
        "stateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:thera-pipeline-prod-daily",
        "status":"FAILED","error":"Lambda.TooManyRequestsException","cause":"Rate Exceeded."}}"#,
    )
    .unwrap();
    let unchanged = serde_json::json!({"id": "e2", "source": "aws.s3", "detail-type": "Object Deleted", "detail": {}});
    std::fs::write(&events, format!("{event}\n{unchanged}\n")).unwrap();
    let out = remediator(&[
        "plan",
        "--base",
        "policies/thera-pipeline.yaml",
        "--head",
        head.path().join("p.yaml").to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "e1");
    assert_eq!(lines[0]["before"]["policy"], "redrive-transient-errors");
    assert_eq!(lines[0]["after"]["policy"], serde_json::Value::Null);
    assert_eq!(lines[1]["summary"]["changed"], 1);
    assert_eq!(lines[1]["summary"]["unchanged"], 1);
    // The policy whose match changed, and only it (the file moved: every line is elsewhere).
    assert_eq!(lines[1]["summary"]["touched"], serde_json::json!(["redrive-transient-errors"]));
}

#[test]
fn rules_cover_the_shipped_policies() {
    let out = remediator(&["rules", "--policies", "policies"]);
    assert!(out.status.success());
    let rules: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rule = &rules["rules"][0];
    assert_eq!(rule["eventPattern"]["source"][0], "aws.states");
    assert!(rule["eventPattern"].get("diagnosis").is_none());
    let names: Vec<&str> = rule["policies"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(names.contains(&"never-retry-auth-errors") && names.contains(&"redrive-transient-errors"), "{names:?}");
    let sources: Vec<&str> =
        rules["rules"].as_array().unwrap().iter().map(|r| r["eventPattern"]["source"][0].as_str().unwrap()).collect();
    // S3 deletions and emptied objects have patterns too different to merge.
    assert_eq!(
        sources,
        [
            "aws.states",
            "aws.events",
            "aws.s3",
            "aws.s3",
            "aws.cloudwatch",
            "aws.cloudformation",
            "aws.states",
            "aws.cloudwatch"
        ]
    );
    assert_eq!(rules["rules"][6]["eventPattern"]["detail"]["status"][0], "SUCCEEDED", "verification of retries");
    assert_eq!(rules["rules"][7]["eventPattern"]["detail"]["state"]["value"][0], "OK", "alarms back to OK");
    assert_eq!(rules["rules"][7]["eventPattern"]["detail"]["previousState"]["value"][0], "ALARM");
}

#[test]
fn the_fuzzers_corpus_goes_through_the_cli_without_a_crash() {
    let corpus = workspace().join("fuzz/corpus");
    let exit_is_clean = |o: &Output| matches!(o.status.code(), Some(0 | 1));
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus.join("event_parser")).unwrap().flatten() {
        let out =
            remediator(&["explain", "--policies", "policies", "--event", entry.path().to_str().unwrap(), "--why"]);
        assert!(exit_is_clean(&out), "{}: {:?}", entry.path().display(), out);
        seen += 1;
    }
    for entry in std::fs::read_dir(corpus.join("policy_loader")).unwrap().flatten() {
        let out = remediator(&["validate", "--policies", entry.path().to_str().unwrap()]);
        assert!(exit_is_clean(&out), "{}: {:?}", entry.path().display(), out);
        seen += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(corpus.join("pattern_compiler")).unwrap().flatten() {
        let pattern = std::fs::read_to_string(entry.path()).unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, format!("policies:\n  - name: fuzzed\n    match: {pattern}\n    actions: [notify]\n"))
            .unwrap();
        let out = remediator(&["validate", "--policies", file.to_str().unwrap()]);
        assert!(exit_is_clean(&out), "{}: {:?}", entry.path().display(), out);
        seen += 1;
    }
    assert!(seen > 20, "the corpus is there ({seen})");
}
