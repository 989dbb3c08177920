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
    // As deployed: its own role configured, so its account is known without asking STS
    // (the calls counted here are the Lambda's).
    let role = format!("arn:aws:iam::{}:role/remediator", harness::ACCOUNT);
    let env = [("AWS_ENDPOINT_URL", proxy.endpoint.as_str()), ("REMEDIATOR_ROLE_ARN", role.as_str())];
    harness::run_with(bin(), emulator, &["handle", "--event", "-"], Some(&event.to_string()), &env)
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
    // Whether the SDK's retry is answered idempotently (the first start still running)
    // or with ExecutionAlreadyExists (it finished) depends on timing; the behaviour does
    // not: one restart, with the original's input.
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("restarted as ") || detail.contains("an earlier attempt started it; same input"),
        "{outcome}"
    );
    assert_eq!(proxy.counts()["StartExecution"], 2, "the SDK retried the lost call");
    let names = p.execution_names().await;
    assert_eq!(names.len(), 2, "one original, one restart: not two");
    let sfn = aws_sdk_sfn::Client::new(&emulator.sdk());
    let mut inputs = Vec::new();
    for name in &names {
        let arn = harness::execution_arn(name);
        inputs.push(sfn.describe_execution().execution_arn(arn).send().await.unwrap().input().map(str::to_string));
    }
    assert_eq!(inputs[0], inputs[1], "the restart carries the original input");
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
    assert_eq!(p.incident_item(key).await.unwrap()["status"], "RELEASED", "released for the retry, never half-written");

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
    // The claim; history ∥ describe; the guards of the plan: the pauses ∥ the state
    // machine's own partition (and, once per process, whether an earlier version's guard
    // items were moved); the pauses read again right before the restart, the original
    // described again (no second run), and the restart; the completion with its
    // follow-up record (one transaction); then the summary, and its delivery recorded.
    let expected = [
        "UpdateItem",
        "GetExecutionHistory",
        "DescribeExecution",
        "GetItem",
        "Query",
        "Query",
        "Query",
        "DescribeExecution",
        "StartExecution",
        "TransactWriteItems",
        "Publish",
        "UpdateItem",
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

fn spawn_via(emulator: &Emulator, proxy: &FaultProxy, event: &Value, lease: &str) -> std::process::Child {
    let mut child = Command::new(bin())
        .args(["handle", "--event", "-"])
        .envs(emulator.env_via(&proxy.endpoint))
        .env("REMEDIATOR_LEASE", lease)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(event.to_string().as_bytes()).unwrap();
    child
}

/// Waits (bounded) until the proxy has seen `operation`.
async fn wait_for_call(proxy: &FaultProxy, operation: &str) {
    for _ in 0..600 {
        if proxy.log().iter().any(|c| c == operation) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{operation} never called: {:?}", proxy.log());
}

/// Waits (bounded) until the claim of `key` has run out of lease.
async fn wait_for_lease_end(p: &Pipeline, key: &str) {
    for _ in 0..300 {
        let item = p.incident_item(key).await.expect("the claim is recorded");
        let lease = item["lease_until"].as_i64().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        if lease < now {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("the lease of {key} never ended");
}

fn run_direct(emulator: &Emulator, args: &[&str], stdin: Option<&str>) -> Output {
    harness::run(bin(), emulator, args, stdin)
}

// Issue 9, defect 1: a handling killed after its claim was acknowledged by the next
// delivery ("in progress") and lost. Now "in progress" is a retryable error, the lease
// ends, and the next delivery takes the incident over and heals it once.
#[tokio::test(flavor = "multi_thread")]
async fn a_handling_killed_after_its_claim_comes_back_and_heals_once() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "killed").await;
    let key = format!("{}#0", event["detail"]["executionArn"].as_str().unwrap());
    // Diagnosis hangs (every attempt), so the handling is inside its claim when killed.
    proxy.arm("GetExecutionHistory", Fault::Delay(std::time::Duration::from_secs(30)), 100);
    let mut child = spawn_via(&emulator, &proxy, &event, "20s");
    wait_for_call(&proxy, "GetExecutionHistory").await;
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert_eq!(p.incident_item(&key).await.unwrap()["status"], "IN_PROGRESS");

    // A redelivery while the dead handling's lease runs: a retryable error, nothing done.
    let early = run_direct(&emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    assert_eq!(early.status.code(), Some(1), "{}", String::from_utf8_lossy(&early.stderr));
    let line = &outcomes(&early)[0];
    assert_eq!(line["retryable"], true, "{line}");
    assert!(line["error"].as_str().unwrap().contains("is being handled by"), "{line}");
    assert_eq!(p.execution_names().await.len(), 1, "nothing done while the lease runs");

    wait_for_lease_end(&p, &key).await;
    // `history` shows the claim that never completed.
    let history = run_direct(&emulator, &["history", "--since", "1h", "--json"], None);
    let rows = String::from_utf8_lossy(&history.stdout).to_string();
    let row: Value =
        rows.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|r| r["incident"] == key).unwrap();
    assert_eq!(row["resolution"], "abandoned", "{rows}");

    // The next delivery after the lease takes the incident over and heals it, once.
    let late = run_direct(&emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    assert!(late.status.success(), "{}", String::from_utf8_lossy(&late.stderr));
    let outcome = &outcomes(&late)[0];
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert!(outcome["took_over_from"].as_str().unwrap().starts_with("cli-"), "{outcome}");
    assert_eq!(p.execution_names().await.len(), 2, "one original, one restart");
    assert_eq!(p.summaries().await.len(), 1);
    assert_eq!(p.incident_item(&key).await.unwrap()["status"], "COMPLETED");
}

// Issue 9, defect 1: the sweep takes over a dead handling of any source (here an S3
// deletion) from the event its claim kept, and keeps the before-image of the change the
// dead handling had already made.
#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_takes_over_a_dead_handling_of_an_s3_event_and_keeps_its_before_image() {
    let (emulator, p, proxy) = setup().await;
    let object = "thera-pipeline/apollo/latest.json";
    let event = p.delete_object(object).await;
    let head = format!("HEAD /{}/{object}", harness::BUCKET);
    // The restore removes the delete marker, then hangs verifying it: killed there.
    proxy.arm(&head, Fault::Delay(std::time::Duration::from_secs(30)), 100);
    let mut child = spawn_via(&emulator, &proxy, &event, "3s");
    wait_for_call(&proxy, &head).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(p.object_body(object).await.is_some(), "the dead handling had restored it");
    let key = format!("event:aws.s3:{}", event["id"].as_str().unwrap());
    assert_eq!(p.incident_item(&key).await.unwrap()["status"], "IN_PROGRESS");
    wait_for_lease_end(&p, &key).await;

    let sm = p.state_machine_arn.clone();
    let swept = run_direct(&emulator, &["sweep", "--state-machine", &sm, "--since", "1m"], None);
    assert!(swept.status.success(), "{}", String::from_utf8_lossy(&swept.stderr));
    assert!(
        String::from_utf8_lossy(&swept.stderr).contains("taken over"),
        "{}",
        String::from_utf8_lossy(&swept.stderr)
    );
    let item = p.incident_item(&key).await.unwrap();
    assert_eq!(item["status"], "COMPLETED", "{item}");
    let outcome: Value = serde_json::from_str(item["outcome"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert!(outcome["actions"][0]["before"]["delete_marker"].is_string(), "the journal kept it: {outcome}");
    assert_eq!(p.summaries().await.len(), 1, "one summary");
}

// Issue 9, defect 4: a denied call is recorded and reported once, and not redelivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_call_is_reported_once_and_not_redelivered() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "denied").await;
    proxy.arm("StartExecution", Fault::Deny, 100);
    let out = handle_via(&emulator, &proxy, &event);
    assert!(out.status.success(), "recorded and reported, not an error: {}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "failed", "{outcome}");
    assert_eq!(outcome["actions"][0]["error_kind"], "denied", "{outcome}");
    assert_eq!(proxy.counts()["StartExecution"], 1, "the SDK does not retry a denial");
    let key = outcome["incident"].as_str().unwrap();
    assert_eq!(p.incident_item(key).await.unwrap()["status"], "COMPLETED");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1);
    assert!(summaries[0]["Message"].as_str().unwrap().contains("AccessDeniedException"), "{}", summaries[0]);

    let again = handle_via(&emulator, &proxy, &event);
    assert_eq!(outcomes(&again)[0]["resolution"], "duplicate");
    assert!(p.summaries().await.is_empty(), "reported once: no second summary");
}

// Issue 9, defect 3: a completion that failed gives the claim back; the retry keeps
// what was done and sends the one summary of its outcome.
#[tokio::test(flavor = "multi_thread")]
async fn a_completion_that_failed_is_retried_with_one_summary() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "uncompleted").await;
    proxy.arm("TransactWriteItems", Fault::ServerError, 100);
    let out = handle_via(&emulator, &proxy, &event);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcomes(&out)[0]["retryable"], true);
    assert!(p.summaries().await.is_empty(), "no summary for a record that did not land");
    assert_eq!(p.execution_names().await.len(), 2, "the restart happened");

    proxy.clear();
    let retry = handle_via(&emulator, &proxy, &event);
    assert!(retry.status.success(), "{}", String::from_utf8_lossy(&retry.stderr));
    let outcome = &outcomes(&retry)[0];
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert_eq!(p.execution_names().await.len(), 2, "not restarted twice");
    assert_eq!(p.summaries().await.len(), 1, "one summary");
    let key = outcome["incident"].as_str().unwrap();
    assert_eq!(p.incident_item(key).await.unwrap()["status"], "COMPLETED");
}

// Issue 9, defect 3: a completion that landed but whose answer was lost is not turned
// into a failure, and its summary still goes out, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_completion_whose_answer_was_lost_stays_completed() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "lost-answer").await;
    proxy.arm("TransactWriteItems", Fault::LoseResponse, 1);
    let out = handle_via(&emulator, &proxy, &event);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    let key = outcome["incident"].as_str().unwrap();
    let item = p.incident_item(key).await.unwrap();
    assert_eq!(item["status"], "COMPLETED", "{item}");
    assert_eq!(item["summary_state"], "sent", "{item}");
    assert_eq!(p.summaries().await.len(), 1);
    let again = handle_via(&emulator, &proxy, &event);
    assert_eq!(outcomes(&again)[0]["resolution"], "duplicate");
    assert!(p.summaries().await.is_empty(), "no second summary");
}

// Issue 9, defect 2: a closed window is never overwritten before its digest is sent, and
// its lines are deleted only after the digest was published.
#[tokio::test(flavor = "multi_thread")]
async fn digest_windows_keep_their_lines_until_their_digest_is_published() {
    use remediator::summary::{Digests, Fold};
    let (emulator, _p, _proxy) = setup().await;
    let table = remediator::aws::dynamodb::StateTable::new(
        aws_sdk_dynamodb::Client::new(&emulator.sdk()),
        harness::STATE_TABLE,
    );
    let key = "redrive-transient-errors|thera-pipeline-prod-daily|remediated|info|live";
    let t = 1_000_000;
    assert_eq!(table.open_or_fold(key, 60, "first", t).await.unwrap(), Fold::Opened);
    assert_eq!(table.open_or_fold(key, 60, "second", t + 1).await.unwrap(), Fold::Folded { closes_at: t + 60 });
    // The window closed and nobody flushed it: a new summary goes alone, the folded
    // line stays.
    assert_eq!(table.open_or_fold(key, 60, "third", t + 100).await.unwrap(), Fold::Alone);
    // A flusher claims it; a concurrent one finds it held.
    let due = table.claim_due(t + 100, "flusher-a", t + 130).await.unwrap();
    assert_eq!(due, vec![(key.to_string(), vec!["second".to_string()])]);
    assert!(table.claim_due(t + 101, "flusher-b", t + 131).await.unwrap().is_empty(), "held by flusher-a");
    // flusher-a's publish failed (it did not close): after its lease, the next flush
    // finds the line again.
    let again = table.claim_due(t + 140, "flusher-c", t + 170).await.unwrap();
    assert_eq!(again, vec![(key.to_string(), vec!["second".to_string()])]);
    // Published: closed, and a new window opens.
    table.close(key, "flusher-c").await.unwrap();
    assert!(table.claim_due(t + 200, "flusher-d", t + 230).await.unwrap().is_empty());
    assert_eq!(table.open_or_fold(key, 60, "fourth", t + 200).await.unwrap(), Fold::Opened);
}

// Issue 10, item 9: the circuit breaker counts failed remediations of distinct
// incidents, not deliveries: one incident and its redeliveries never open it.
#[tokio::test(flavor = "multi_thread")]
async fn one_incident_delivered_again_and_again_counts_once_toward_the_circuit() {
    let (emulator, p, proxy) = setup().await;
    let event = throttled_failure(&p, "redelivered").await;
    proxy.arm("StartExecution", Fault::ServerError, 1000);
    for delivery in 0..4 {
        let out = handle_via(&emulator, &proxy, &event);
        assert_eq!(out.status.code(), Some(1), "delivery {delivery}");
        let line = &outcomes(&out)[0];
        assert_eq!(line["retryable"], true, "delivery {delivery}: {line}");
        assert_eq!(line["outcome"]["actions"][0]["result"], "failed", "delivery {delivery} still tries: {line}");
        assert!(line["outcome"].get("circuit_opened").is_none(), "delivery {delivery}: {line}");
    }
    let circuit = p
        .state_items()
        .await
        .into_iter()
        .find(|i| i["sk"] == "circuit" && i["pk"] == format!("GUARD#{}", p.state_machine_arn))
        .expect("the circuit counts, in its state machine's partition");
    assert_eq!(circuit["failed_incidents"].as_array().map(Vec::len), Some(1), "{circuit}");

    // Never a loop: the fifth handling of the same failing incident is final.
    let last = handle_via(&emulator, &proxy, &event);
    assert!(last.status.success(), "{}", String::from_utf8_lossy(&last.stderr));
    let outcome = &outcomes(&last)[0];
    assert_eq!(outcome["resolution"], "failed", "{outcome}");
    assert!(outcome["note"].as_str().unwrap().contains("given up after 5 handlings"), "{outcome}");
    let key = outcome["incident"].as_str().unwrap();
    assert_eq!(p.incident_item(key).await.unwrap()["status"], "COMPLETED");
}

// Issue 10, item 8: change locks belong to the incident that took them and hold for a
// while, not for 90 days; only an applied change counts as "changed since".
#[tokio::test(flavor = "multi_thread")]
async fn change_locks_hold_briefly_belong_to_their_incident_and_count_only_when_applied() {
    use remediator::apply::ChangeLocks;
    let (emulator, _p, _proxy) = setup().await;
    let table = remediator::aws::dynamodb::StateTable::new(
        aws_sdk_dynamodb::Client::new(&emulator.sdk()),
        harness::STATE_TABLE,
    );
    let f = "arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-apollo-full-pull";
    let hold = std::time::Duration::from_secs(2);
    assert!(table.claim_change(f, "timeout", "300", "incident-a", hold).await.unwrap());
    assert!(!table.claim_change(f, "timeout", "300", "incident-b", hold).await.unwrap(), "the burst's other incident");
    assert!(
        table.claim_change(f, "timeout", "300", "incident-a", hold).await.unwrap(),
        "a takeover of the same incident"
    );
    // A raise that crashed before it was applied is no change.
    assert_eq!(table.last_change(f, "timeout").await.unwrap(), None);
    table.applied_change(f, "timeout", "300", "450").await.unwrap();
    assert!(table.last_change(f, "timeout").await.unwrap().is_some());
    // After a redeploy puts 300 back, a later incident may raise it again.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert!(table.claim_change(f, "timeout", "300", "incident-c", hold).await.unwrap());
}

// The harness's proxy passes bodies through as bytes (it used to read them as text and
// corrupt anything that was not UTF-8).
#[tokio::test(flavor = "multi_thread")]
async fn the_fault_proxy_passes_binary_bodies_through_unchanged() {
    let (emulator, _p, proxy) = setup().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&emulator.sdk_via(&proxy.endpoint)).force_path_style(true).build(),
    );
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s3.put_object()
        .bucket(harness::BUCKET)
        .key("thera-pipeline/binary.bin")
        .body(bytes.clone().into())
        .send()
        .await
        .expect("PutObject through the proxy");
    let got = s3.get_object().bucket(harness::BUCKET).key("thera-pipeline/binary.bin").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), bytes);
    assert_eq!(proxy.counts().get("PUT /thera-pipeline-data/thera-pipeline/binary.bin?x-id=PutObject"), Some(&1));
}

// A summary's delivery is recorded only by the handling that is sending it: a slow
// handling whose publish finally failed cannot mark owed a summary that a later
// delivery took over and sent (which would send it a second time).
#[tokio::test(flavor = "multi_thread")]
async fn only_the_sender_of_a_summary_records_its_delivery() {
    use remediator::incident::IncidentKey;
    use remediator::outcome::Resolution;
    use remediator::record::{Claim, ClaimRequest, Completion, IncidentLog, Status, SummaryState};
    let (emulator, _p, _proxy) = setup().await;
    let table = remediator::aws::dynamodb::StateTable::new(
        aws_sdk_dynamodb::Client::new(&emulator.sdk()),
        harness::STATE_TABLE,
    );
    let key = IncidentKey::from_stored("summary-fence");
    let completion = |owner: &str, status: Status, summary: bool| Completion {
        key: key.clone(),
        owner: owner.into(),
        status,
        resolution: Resolution::Remediated,
        policy: None,
        execution: None,
        state_machine: None,
        state: None,
        error: None,
        outcome: serde_json::json!({}),
        summary: summary.then(|| ("subject".to_string(), "body".to_string())),
        follow_ups: Vec::new(),
        answers: key.clone(),
        report: None,
        approval: None,
    };
    let now = remediator::clock::now();
    let claim = |owner: &str| ClaimRequest {
        key: key.clone(),
        owner: owner.into(),
        lease_until: now - 1,
        event_id: "e".into(),
        source: "aws.states".into(),
        input_hash: "h".into(),
        event: serde_json::json!({}),
    };
    assert!(matches!(table.claim(&claim("slow")).await.unwrap(), Claim::Claimed { .. }));
    table.complete(&completion("slow", Status::Completed, true)).await.unwrap();
    // The slow handling's lease ran out while it was publishing: a redelivery takes the
    // summary over and sends it.
    assert!(table.take_summary(&key, "redelivery", now + 900, now).await.unwrap());
    table.mark_summary(&key, "redelivery", SummaryState::Sent).await.unwrap();
    // Then the slow handling's publish fails; its record of that changes nothing.
    table.mark_summary(&key, "slow", SummaryState::Owed).await.unwrap();
    let item = table.get(&key).await.unwrap().unwrap();
    assert_eq!(item.summary_state, Some(SummaryState::Sent));
    match table.claim(&claim("third")).await.unwrap() {
        Claim::Done { owed_summary, .. } => assert_eq!(owed_summary, None, "nothing is owed: no second copy"),
        other => panic!("{other:?}"),
    }

    // A handling that released its claim (a retryable failure) with a summary: the next
    // delivery claims the incident while the summary is being published. The publish
    // is recorded by its sender, the claim's new owner notwithstanding, so no sweep
    // sends that summary again.
    let key2 = IncidentKey::from_stored("summary-fence-released");
    let claim2 = |owner: &str| ClaimRequest { key: key2.clone(), ..claim(owner) };
    assert!(matches!(table.claim(&claim2("first")).await.unwrap(), Claim::Claimed { .. }));
    table
        .complete(&Completion {
            key: key2.clone(),
            answers: key2.clone(),
            ..completion("first", Status::Released, true)
        })
        .await
        .unwrap();
    assert!(matches!(table.claim(&claim2("second")).await.unwrap(), Claim::Claimed { .. }));
    table.mark_summary(&key2, "first", SummaryState::Sent).await.unwrap();
    assert_eq!(table.get(&key2).await.unwrap().unwrap().summary_state, Some(SummaryState::Sent));
    let abandoned = table.abandoned(now + 3600).await.unwrap();
    assert!(abandoned.iter().all(|a| a.key != key2 || a.owner == "second"), "{abandoned:?}");
}
