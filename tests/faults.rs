//! Reliability under AWS faults: a fault-injecting proxy between the `remediator`
//! binary (real SDK, real retry configuration) and the emulator.

mod harness;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use harness::fault_proxy::{Fault, FaultProxy};
use harness::{outcomes, Emulator, Pipeline};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_remediator"))
}

fn handle_via(emulator: &Emulator, proxy: &FaultProxy, event: &Value) -> Output {
    let mut child = Command::new(bin())
        .args(["handle", "--event", "-"])
        .envs(emulator.env_via(&proxy.endpoint))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(event.to_string().as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

async fn throttled_failure(p: &Pipeline, name: &str) -> Value {
    p.set_apollo_quota("throttled").await;
    let arn = p.run_execution(name, "apollo-delta").await;
    p.set_apollo_quota("ok").await;
    p.status_event(&arn, false).await
}

async fn setup() -> (Emulator, Pipeline, FaultProxy) {
    let emulator = Emulator::start();
    let pipeline = Pipeline::create(&emulator, bin()).await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    (emulator, pipeline, proxy)
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_server_errors_are_retried_by_the_sdk() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "faulty-1").await;
    proxy.arm("GetExecutionHistory", Fault::Throttle, 2);
    proxy.arm("UpdateItem", Fault::ServerError, 1);
    let out = handle_via(&emulator, &proxy, &event);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(outcomes(&out)[0]["resolution"], "remediated");
    let counts = proxy.counts();
    assert_eq!(counts["GetExecutionHistory"], 3, "two throttled, then served: {counts:?}");
    assert_eq!(p.execution_names().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_whose_response_was_lost_is_confirmed_not_run_twice() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "faulty-2").await;
    proxy.arm("StartExecution", Fault::LoseResponse, 1);
    // The SDK's retry arrives once the restart has finished: StartExecution with the same
    // name and input answers ExecutionAlreadyExists for a closed execution (for a running
    // one it returns that execution, and the test would depend on timing).
    proxy.arm("StartExecution", Fault::Delay(std::time::Duration::from_secs(2)), 1);
    let out = handle_via(&emulator, &proxy, &event);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert!(
        outcome["actions"][0]["detail"].as_str().unwrap().contains("an earlier attempt started it; same input"),
        "{outcome}"
    );
    assert_eq!(proxy.counts()["StartExecution"], 2, "the SDK retried the lost call");
    assert_eq!(p.execution_names().await.len(), 2, "one original, one restart: not two");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_keeps_failing_is_a_retryable_error_and_the_next_delivery_heals() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "faulty-3").await;
    proxy.arm("StartExecution", Fault::ServerError, 100);
    let out = handle_via(&emulator, &proxy, &event);
    assert_eq!(out.status.code(), Some(1));
    let failed = &outcomes(&out)[0];
    assert_eq!(failed["retryable"], true, "{failed}");
    assert_eq!(failed["outcome"]["resolution"], "failed");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1);
    assert!(
        summaries[0]["Message"].as_str().unwrap().contains("StartExecution failed"),
        "the summary says what failed"
    );
    let key = failed["outcome"]["incident"].as_str().unwrap();
    assert_eq!(p.incident_item(key).await.unwrap()["status"], "FAILED", "released for the retry, never half-written");

    proxy.clear();
    let retry = handle_via(&emulator, &proxy, &event);
    assert!(retry.status.success());
    assert_eq!(outcomes(&retry)[0]["resolution"], "remediated");
    assert_eq!(p.execution_names().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_costs_one_call_and_a_healed_incident_few() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "counted").await;
    let out = handle_via(&emulator, &proxy, &event);
    assert!(out.status.success());
    let healed = proxy.log();
    // Four rounds: the claim; history ∥ describe ∥ guards; the restart; the summary ∥
    // the completion with its follow-up record (one transaction).
    let expected = [
        "UpdateItem",
        "GetExecutionHistory",
        "DescribeExecution",
        "Query",
        "StartExecution",
        "Publish",
        "TransactWriteItems",
    ];
    let mut sorted_got = healed.clone();
    sorted_got.sort();
    let mut sorted_expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    sorted_expected.sort();
    assert_eq!(sorted_got, sorted_expected, "calls of a healed incident: {healed:?}");

    proxy.reset_counts();
    let dup = handle_via(&emulator, &proxy, &event);
    assert_eq!(outcomes(&dup)[0]["resolution"], "duplicate");
    assert_eq!(proxy.log(), ["UpdateItem"], "a duplicate costs the claim only");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_summary_that_could_not_be_published_is_sent_by_the_next_delivery() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "unsent").await;
    proxy.arm("Publish", Fault::ServerError, 100);
    let out = handle_via(&emulator, &proxy, &event);
    assert_eq!(out.status.code(), Some(1), "a lost summary makes the event come back");
    assert!(p.summaries().await.is_empty());
    assert_eq!(p.execution_names().await.len(), 2, "the remediation itself happened");

    proxy.clear();
    let again = handle_via(&emulator, &proxy, &event);
    assert!(again.status.success());
    let outcome = &outcomes(&again)[0];
    assert_eq!(outcome["resolution"], "duplicate", "{outcome}");
    assert!(outcome["note"].as_str().unwrap().contains("summary had not been delivered"), "{outcome}");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1, "sent once, by the redelivery");
    assert_eq!(p.execution_names().await.len(), 2, "and nothing acted twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_slower_than_the_sdk_attempt_timeout_is_retried() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "slow").await;
    // One attempt of DescribeExecution hangs past the 10 s attempt timeout.
    proxy.arm("DescribeExecution", Fault::Delay(std::time::Duration::from_secs(12)), 1);
    let out = handle_via(&emulator, &proxy, &event);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(outcomes(&out)[0]["resolution"], "remediated");
    assert!(proxy.counts()["DescribeExecution"] >= 2, "{:?}", proxy.counts());
}
