//! End-to-end tests: the `remediator` binary against the moto server, through the real
//! AWS SDK for Rust. Each test starts its own emulator on a free loopback port and
//! builds the miniature Thera pipeline on it.

mod harness;

use std::path::Path;
use std::process::Stdio;

use harness::runtime_api::{Reply, RuntimeApi};
use harness::{outcomes, run, run_with, Emulator, Pipeline, SEEDED_SECRET};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_remediator"))
}

async fn setup() -> (Emulator, Pipeline) {
    let emulator = Emulator::start();
    let pipeline = Pipeline::create(&emulator, bin()).await;
    (emulator, pipeline)
}

/// A throttled Apollo pull: the quota table says "throttled" while the execution runs.
async fn throttled_failure(p: &Pipeline, name: &str) -> Value {
    p.set_apollo_quota("throttled").await;
    let arn = p.run_execution(name, "apollo-delta").await;
    assert_eq!(p.wait(&arn).await, "FAILED");
    p.set_apollo_quota("ok").await; // the throttling clears
    p.status_event(&arn, false).await
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SEEDED_SECRET), "{what} leaked the seeded secret: {text}");
    assert!(!text.contains("apollo_api_key"), "{what} leaked the execution input: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_execution_is_retried_once_and_heals() {
    let (emulator, p) = setup().await;
    let event = throttled_failure(&p, "daily-2026-11-29").await;

    let out = run(bin(), &emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert_eq!(outcome["policy"], "redrive-transient-errors");
    assert_eq!(outcome["diagnosis"]["state"], "PullApolloDelta");
    assert_eq!(outcome["diagnosis"]["error"], "Lambda.TooManyRequestsException");
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("restarted as "), "{detail}");

    // The restarted execution ran with the same input and succeeded.
    let names = p.execution_names().await;
    assert_eq!(names.len(), 2, "{names:?}");
    let restarted = names.iter().find(|n| n.contains("-rmd1-")).expect("a restart");
    let restarted_arn = harness::execution_arn(restarted);
    assert_eq!(p.wait(&restarted_arn).await, "SUCCEEDED");

    // One summary, readable, without the input.
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let subject = summaries[0]["Subject"].as_str().unwrap();
    assert_eq!(subject, "[restarted] thera-pipeline-prod-daily: Lambda.TooManyRequestsException at PullApolloDelta");
    let message = summaries[0]["Message"].as_str().unwrap();
    assert!(message.contains("Failed state:  PullApolloDelta"), "{message}");
    assert!(message.contains("console.aws.amazon.com/states/home"), "{message}");
    assert_eq!(summaries[0]["MessageAttributes"]["outcome"]["Value"], "remediated");

    // The incident is recorded, completed, with its outcome.
    let key = outcome["incident"].as_str().unwrap();
    let item = p.incident_item(key).await.expect("incident recorded");
    assert_eq!(item["status"], "COMPLETED");
    assert_eq!(item["resolution"], "remediated");
    assert_eq!(item["failed_state"], "PullApolloDelta");

    // The restart's SUCCEEDED event verifies the remediation and closes the incident.
    let success = p.status_event(&restarted_arn, false).await;
    let verified = run(bin(), &emulator, &["handle", "--event", "-"], Some(&success.to_string()));
    let verdict = &outcomes(&verified)[0];
    assert_eq!(verdict["resolution"], "healed", "{verdict}");
    assert_eq!(p.incident_item(key).await.unwrap()["verification"], "healed");
    let healed = p.summaries().await;
    assert_eq!(healed.len(), 1);
    assert_eq!(healed[0]["Subject"], "[healed] thera-pipeline-prod-daily: the retry succeeded");
    let again = run(bin(), &emulator, &["handle", "--event", "-"], Some(&success.to_string()));
    assert_eq!(outcomes(&again)[0]["resolution"], "duplicate", "verified once");

    for (what, text) in [
        ("stdout", stdout),
        ("stderr", String::from_utf8_lossy(&out.stderr).to_string()),
        ("summary", summaries[0].to_string()),
        ("state table", serde_json::to_string(&p.state_items().await).unwrap()),
    ] {
        assert_no_secret(what, &text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_delivered_twice_causes_one_action() {
    let (emulator, p) = setup().await;
    let event = throttled_failure(&p, "daily-dup").await;
    let first = run(bin(), &emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    let second = run(bin(), &emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    assert!(first.status.success() && second.status.success());
    assert_eq!(outcomes(&first)[0]["resolution"], "remediated");
    let dup = &outcomes(&second)[0];
    assert_eq!(dup["resolution"], "duplicate", "{dup}");
    assert_eq!(dup["recorded"]["resolution"], "remediated", "the stored outcome is returned");
    assert_eq!(p.execution_names().await.len(), 2, "one original, one restart");
    assert_eq!(p.summaries().await.len(), 1, "no summary for a duplicate");
    let incidents = p.state_items().await.into_iter().filter(|i| i["sk"] == "INCIDENT").count();
    assert_eq!(incidents, 1, "one incident recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_deliveries_cause_one_action() {
    let (emulator, p) = setup().await;
    let event = throttled_failure(&p, "daily-race").await.to_string();
    let spawn = || {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["handle", "--event", "-"])
            .envs(emulator.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(event.as_bytes()).unwrap();
        child
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    // One remediates; the other finds it done (a duplicate) or still being handled, or
    // loses the claim on completion (the emulator's conditional writes are not atomic
    // under concurrency, DynamoDB's are): a retryable error, so the event comes back and
    // is then a duplicate.
    let mut resolutions = Vec::new();
    for out in [&a, &b] {
        let line = &outcomes(out)[0];
        if out.status.success() {
            resolutions.push(line["resolution"].as_str().unwrap().to_string());
        } else {
            assert_eq!(line["retryable"], true, "{line}");
            let again = run(bin(), &emulator, &["handle", "--event", "-"], Some(&event));
            assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
            resolutions.push(format!("redelivered {}", outcomes(&again)[0]["resolution"].as_str().unwrap()));
        }
    }
    resolutions.sort();
    assert!(
        resolutions == ["redelivered duplicate", "remediated"] || resolutions == ["duplicate", "remediated"],
        "{resolutions:?}"
    );
    assert_eq!(p.execution_names().await.len(), 2, "exactly one restart");
    assert_eq!(p.summaries().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auth_failure_is_reported_once_and_never_retried() {
    let (emulator, p) = setup().await;
    let arn = p.run_execution("firecrawl-2026-11-29", "firecrawl").await;
    // The 2022 event shape: no error or cause; diagnosis comes from the history.
    let event = p.status_event(&arn, true).await;
    let out = run(bin(), &emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "notified", "{outcome}");
    assert_eq!(outcome["policy"], "never-retry-auth-errors");
    assert_eq!(outcome["diagnosis"]["error"], "HTTPError");
    assert_eq!(p.execution_names().await, ["firecrawl-2026-11-29"], "no retry");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1);
    assert!(summaries[0]["Subject"]
        .as_str()
        .unwrap()
        .starts_with("[needs attention] thera-pipeline-prod-daily: HTTPError"));
    let message = summaries[0]["Message"].as_str().unwrap();
    assert!(message.contains("/thera/apollo/api_key"), "the runbook names the parameters: {message}");
    assert_eq!(
        summaries[0]["MessageAttributes"]["severity"]["Value"], "critical",
        "the policy's notify action says critical"
    );
    assert_no_secret("summary", &summaries[0].to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_event_is_rejected_clearly_and_writes_nothing() {
    let (emulator, p) = setup().await;
    let out =
        run(bin(), &emulator, &["handle", "--event", "-"], Some("{\"source\": \"aws.states\", \"detail-type\": "));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("malformed event: not valid JSON"), "{stderr}");

    let missing = r#"{"source":"aws.states","detail-type":"Step Functions Execution Status Change","detail":{"status":"FAILED"}}"#;
    let out = run(bin(), &emulator, &["handle", "--event", "-"], Some(missing));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcomes(&out)[0]["retryable"], false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("`detail.executionArn` is missing"));
    // Nothing but what `bootstrap` wrote (the guard layout's marker).
    let items = p.state_items().await;
    assert!(items.iter().all(|i| i["pk"] == "GUARD" && i["sk"] == "sharded"), "nothing written: {items:?}");
    assert!(p.summaries().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ndjson_events_get_one_outcome_each_and_successes_are_ignored() {
    let (emulator, p) = setup().await;
    let ok = p.run_execution("daily-ok", "apollo-delta").await;
    let failed = p.run_execution("firecrawl-x", "firecrawl").await;
    let text = format!("{}\n{}\n", p.status_event(&ok, false).await, p.status_event(&failed, false).await);
    let out = run(bin(), &emulator, &["handle", "--event", "-"], Some(&text));
    assert!(out.status.success());
    let all = outcomes(&out);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["resolution"], "ignored");
    assert_eq!(all[1]["resolution"], "notified");
    let items = p.state_items().await;
    let kinds: Vec<&str> = items.iter().map(|i| i["pk"].as_str().unwrap().split('#').next().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "INCIDENT").count(), 1, "a success is not an incident: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "REPORT").count(), 1, "the failure's report row: {kinds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_changes_nothing_and_says_would_have() {
    let (emulator, p) = setup().await;
    let event = throttled_failure(&p, "daily-dry").await;
    let out = run_with(
        bin(),
        &emulator,
        &["handle", "--event", "-"],
        Some(&event.to_string()),
        &[("REMEDIATOR_DRY_RUN", "1")],
    );
    assert!(out.status.success());
    assert_eq!(outcomes(&out)[0]["resolution"], "would-remediate");
    assert_eq!(p.execution_names().await.len(), 1);
    let summaries = p.summaries().await;
    assert!(summaries[0]["Subject"].as_str().unwrap().starts_with("[dry run]"));
    assert!(summaries[0]["Message"].as_str().unwrap().contains("would have"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lambda_entry_point_handles_events_through_the_runtime_api() {
    let (emulator, p) = setup().await;
    let event = throttled_failure(&p, "daily-lambda").await;
    let mut api = RuntimeApi::start().await;
    let mut child =
        harness::runtime_api::function(bin(), &emulator, &api, &[("REMEDIATOR_STATE_MACHINES", &p.state_machine_arn)]);

    let Reply::Response(outcome) = api.invoke("req-1", event.clone()).await else { panic!("expected a response") };
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    let Reply::Response(dup) = api.invoke("req-2", event).await else { panic!("expected a response") };
    assert_eq!(dup["resolution"], "duplicate");
    let Reply::Error(error) = api.invoke("req-3", serde_json::json!({"detail-type": "x"})).await else {
        panic!("expected an error")
    };
    assert_eq!(error["errorType"], "NonRetryable", "{error}");
    assert!(error["errorMessage"].as_str().unwrap().contains("no `source` field"));
    assert_eq!(p.execution_names().await.len(), 2);

    // The scheduled sweep finds a failure whose event never came.
    p.run_execution("firecrawl-lost", "firecrawl").await;
    let sweep = serde_json::json!({"source": "remediator", "detail-type": "Sweep", "detail": {}});
    let Reply::Response(swept) = api.invoke("req-4", sweep).await else { panic!("expected a response") };
    assert_eq!(swept["sweep"]["failed"], 0, "{swept}");
    assert_eq!(swept["sweep"]["handled"], 2, "the lost failure, and the first one again (absorbed): {swept}");
    child.kill().await.unwrap();

    // Metrics went to stdout in Embedded Metric Format, one line per incident.
    use tokio::io::AsyncReadExt;
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    let lines: Vec<serde_json::Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let (emf, swept): (Vec<_>, Vec<_>) = lines.into_iter().partition(|l| l.get("Outcome").is_some());
    assert_eq!(emf.len(), 2, "remediated and notified, not the duplicates: {stdout}");
    assert_eq!(swept.len(), 1, "the sweep's own line: {stdout}");
    assert_eq!(swept[0]["AbandonedClaims"], 0, "{stdout}");
    assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Remediator");
    assert_eq!(emf[0]["Outcome"], "remediated");
    assert!(emf[0]["TimeToRemediate"].as_i64().is_some());
    assert_eq!(emf[1]["Policy"], "never-retry-auth-errors");
}
