//! Human approval with expiry, end to end against the emulator: a policy that asks
//! first changes nothing until a person approves; the answer comes from the command
//! line (the caller's identity from STS) or from the summary's link through the
//! function URL (the Lambda's own entry point, through the Runtime API harness); forged,
//! expired, replayed and plan-changed answers do nothing, and a pause set while the
//! request waits wins.

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::runtime_api::{Reply, RuntimeApi};
use harness::{run_with, Emulator, Pipeline, STATE_TABLE};
use serde_json::{json, Value};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_remediator"))
}

const SECRET: &str = "remediator-approval-key";
const URL: &str = "https://approve.example.lambda-url.us-east-1.on.aws/";

/// The shipped timeout raise, asking a person first.
fn policies(approvers: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        format!(
            "policies:\n  - name: raise-timeout-on-approval\n    match:\n      source: [aws.states]\n      diagnosis: {{timeoutKind: [function]}}\n    \
             actions:\n      - raise-timeout: {{factor: 1.5, max_seconds: 900}}\n    approval: {{expires: 1h, approvers: {approvers}}}\n"
        ),
    )
    .unwrap();
    dir
}

async fn setup() -> (Emulator, Pipeline) {
    let emulator = Emulator::start();
    let pipeline = Pipeline::create(&emulator, bin()).await;
    aws_sdk_secretsmanager::Client::new(&emulator.sdk())
        .create_secret()
        .name(SECRET)
        .secret_string("k7Qx2vN9pL4wR8tY1zB6cF3hJ5mS0dG7aE2uW9iO4qT6yU1r")
        .send()
        .await
        .expect("CreateSecret");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (emulator, pipeline)
}

fn env(dir: &tempfile::TempDir) -> Vec<(&str, &str)> {
    vec![
        ("REMEDIATOR_POLICIES", dir.path().to_str().unwrap()),
        ("REMEDIATOR_APPROVAL_SECRET", SECRET),
        ("REMEDIATOR_APPROVAL_URL", URL),
    ]
}

fn cli(emulator: &Emulator, dir: &tempfile::TempDir, args: &[&str], stdin: Option<&str>) -> (bool, Vec<Value>, String) {
    let out = run_with(bin(), emulator, args, stdin, &env(dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The outcomes are JSON lines; `pause` and `resume` print a sentence.
    let json = stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.success(), json, format!("{}{stdout}", String::from_utf8_lossy(&out.stderr)))
}

/// A function timeout, handled: the request for approval.
async fn asked(emulator: &Emulator, p: &Pipeline, dir: &tempfile::TempDir, name: &str) -> Value {
    let arn = p.run_execution(name, "apollo-full").await;
    let event = p.status_event(&arn, false).await;
    let (ok, out, err) = cli(emulator, dir, &["handle", "--event", "-"], Some(&event.to_string()));
    assert!(ok, "{err}");
    out[0].clone()
}

async fn set_expiry(p: &Pipeline, incident: &str, at: i64) {
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(&p.sdk)
        .update_item()
        .table_name(STATE_TABLE)
        .key("pk", AttributeValue::S(format!("INCIDENT#{incident}")))
        .key("sk", AttributeValue::S("INCIDENT".into()))
        .update_expression("SET approval_expires_at = :at")
        .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
        .send()
        .await
        .expect("UpdateItem");
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_changes_until_a_person_approves_then_the_plan_is_applied_once() {
    let (emulator, p) = setup().await;
    let dir = policies("anyone-with-link");
    let outcome = asked(&emulator, &p, &dir, "approve-cli-1").await;
    assert_eq!(outcome["resolution"], "awaiting-approval", "{outcome}");
    assert_eq!(outcome["actions"][0]["result"], "would-have", "{outcome}");
    assert_eq!(p.function_settings().await, (300, 512), "nothing changed before approval");
    let incident = outcome["incident"].as_str().unwrap().to_string();
    let item = p.incident_item(&incident).await.unwrap();
    assert_eq!(item["approval_state"], "awaiting", "{item}");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1);
    let subject = summaries[0]["Subject"].as_str().unwrap();
    assert!(subject.starts_with("[approval needed]"), "{subject}");
    let message = summaries[0]["Message"].as_str().unwrap();
    assert!(message.contains(&format!("remediator approve {incident}")), "{message}");
    assert!(message.contains(&format!("{URL}?token=v1.")), "{message}");
    assert!(message.contains("raise-timeout [on approval] would raise timeout 300s→450s"), "{message}");

    // A second run of the same function times out while the first request waits.
    let second = asked(&emulator, &p, &dir, "approve-cli-2").await;
    assert_eq!(second["resolution"], "awaiting-approval", "{second}");
    let second_incident = second["incident"].as_str().unwrap().to_string();

    // A redelivery of the failure asks nothing again.
    let arn = outcome["execution"].as_str().unwrap();
    let again = p.status_event(arn, false).await;
    let (_, dup, _) = cli(&emulator, &dir, &["handle", "--event", "-"], Some(&again.to_string()));
    assert_eq!(dup[0]["resolution"], "duplicate");

    // The approval (moto's caller, admitted by anyone-with-link), applied now.
    let (ok, approved, err) = cli(&emulator, &dir, &["approve", &incident], None);
    assert!(ok, "{err}\n{approved:?}");
    let approved = &approved[0];
    assert_eq!(approved["resolution"], "remediated", "{approved}");
    assert_eq!(approved["actions"][0]["detail"], "raised timeout 300s→450s", "{approved}");
    assert!(approved["note"].as_str().unwrap().starts_with("approved by arn:aws:"), "{approved}");
    assert_eq!(p.function_settings().await, (450, 512));
    let item = p.incident_item(&incident).await.unwrap();
    assert_eq!(item["approval_state"], "approved", "{item}");
    assert!(item["approval_by"].as_str().unwrap().starts_with("arn:aws:"), "{item}");

    // Twice: refused with the reason, nothing done again.
    let (ok, twice, _) = cli(&emulator, &dir, &["approve", &incident], None);
    assert!(!ok);
    assert_eq!(twice[0]["resolution"], "refused", "{twice:?}");
    assert!(twice[0]["note"].as_str().unwrap().contains("was approved already"), "{twice:?}");
    assert_eq!(p.function_settings().await, (450, 512));
    let (ok, late_reject, _) = cli(&emulator, &dir, &["reject", &incident, "--reason", "no"], None);
    assert!(!ok, "{late_reject:?}");

    // The second request's raise is in place already (the first approval made it): its
    // approval agrees with that, and raises nothing more.
    let (ok, approved, err) = cli(&emulator, &dir, &["approve", &second_incident], None);
    assert!(ok, "{err}\n{approved:?}");
    assert_eq!(approved[0]["resolution"], "remediated", "{approved:?}");
    let detail = approved[0]["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("changed since this failure"), "{detail}");
    assert_eq!(p.function_settings().await, (450, 512));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_continue_policy_before_the_one_that_asks_does_not_lift_the_approval() {
    let (emulator, p) = setup().await;
    let dir = policies("anyone-with-link");
    std::fs::write(
        dir.path().join("first.yaml"),
        "policies:\n  - {name: tell-first, priority: 1, continue: true, match: {source: [aws.states]}, actions: [notify]}\n",
    )
    .unwrap();
    let outcome = asked(&emulator, &p, &dir, "approve-continue-1").await;
    assert_eq!(outcome["policy"], "tell-first", "{outcome}");
    assert_eq!(outcome["resolution"], "awaiting-approval", "{outcome}");
    assert_eq!(p.function_settings().await, (300, 512), "nothing raised before approval");
    let incident = outcome["incident"].as_str().unwrap().to_string();
    assert_eq!(p.incident_item(&incident).await.unwrap()["approval_policy"], "raise-timeout-on-approval");
    let (ok, approved, err) = cli(&emulator, &dir, &["approve", &incident], None);
    assert!(ok, "{err}\n{approved:?}");
    assert_eq!(p.function_settings().await, (450, 512));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_an_expiry_a_changed_target_and_an_approver_not_named_do_nothing() {
    let (emulator, p) = setup().await;
    let dir = policies("anyone-with-link");

    // Rejected, with the reason recorded and told.
    let first = asked(&emulator, &p, &dir, "approve-reject-1").await;
    let incident = first["incident"].as_str().unwrap().to_string();
    let (ok, rejected, err) =
        cli(&emulator, &dir, &["reject", &incident, "--reason", "load is high, api_key=sk-live-abc"], None);
    assert!(ok, "{err}");
    assert_eq!(rejected[0]["resolution"], "rejected", "{rejected:?}");
    let item = p.incident_item(&incident).await.unwrap();
    assert_eq!(item["approval_state"], "rejected");
    assert_eq!(item["approval_reason"], "load is high, api_key=[REDACTED]", "{item}");
    let summary = p.summaries().await.into_iter().last().unwrap();
    assert!(
        summary["Subject"].as_str().unwrap().starts_with("[approval rejected] raise-timeout-on-approval"),
        "{summary}"
    );
    assert!(!summary["Message"].as_str().unwrap().contains("sk-live-abc"));
    let (ok, after, _) = cli(&emulator, &dir, &["approve", &incident], None);
    assert!(!ok);
    assert!(after[0]["note"].as_str().unwrap().contains("was rejected already"), "{after:?}");

    // Expired (its time moved into the past): an approval now is refused and the
    // request is recorded as expired; nothing was done.
    let second = asked(&emulator, &p, &dir, "approve-expire-1").await;
    let incident = second["incident"].as_str().unwrap().to_string();
    set_expiry(&p, &incident, now() - 1).await;
    let (ok, late, _) = cli(&emulator, &dir, &["approve", &incident], None);
    assert!(!ok);
    assert!(late[0]["note"].as_str().unwrap().contains("came too late"), "{late:?}");
    assert_eq!(p.incident_item(&incident).await.unwrap()["approval_state"], "expired");
    assert!(p.summaries().await.iter().any(|s| s["Subject"].as_str().unwrap().starts_with("[approval expired]")));

    // The sweep expires what no one answered.
    let third = asked(&emulator, &p, &dir, "approve-sweep-1").await;
    let incident = third["incident"].as_str().unwrap().to_string();
    set_expiry(&p, &incident, now() - 1).await;
    let (ok, swept, err) = cli(&emulator, &dir, &["sweep", "--state-machine", &p.state_machine_arn], None);
    assert!(ok, "{err}");
    assert!(swept.iter().any(|o| o["resolution"] == "expired" && o["incident"] == incident.as_str()), "{swept:?}");
    assert_eq!(p.incident_item(&incident).await.unwrap()["approval_state"], "expired");
    assert_eq!(p.function_settings().await, (300, 512), "nothing was raised by any of them");

    // The target changed while the request waited: the approval finds another plan.
    let fourth = asked(&emulator, &p, &dir, "approve-changed-1").await;
    let incident = fourth["incident"].as_str().unwrap().to_string();
    p.lambda().update_function_configuration().function_name(harness::FUNCTION).timeout(320).send().await.unwrap();
    let (ok, changed, _) = cli(&emulator, &dir, &["approve", &incident], None);
    assert!(!ok, "{changed:?}");
    assert_eq!(changed[0]["resolution"], "refused", "{changed:?}");
    assert!(changed[0]["note"].as_str().unwrap().contains("changed since approval was asked"), "{changed:?}");
    assert_eq!(p.function_settings().await.0, 320);

    // Approvers named by pattern: moto's caller is not one of them.
    let named = policies("['arn:aws:iam::123456789012:role/oncall-*']");
    let fifth = asked(&emulator, &p, &named, "approve-named-1").await;
    assert_eq!(fifth["resolution"], "awaiting-approval", "{fifth}");
    let message = p.summaries().await.into_iter().last().unwrap()["Message"].as_str().unwrap().to_string();
    assert!(!message.contains("?token="), "no link where the policy names its approvers: {message}");
    let incident = fifth["incident"].as_str().unwrap().to_string();
    let (ok, denied, _) = cli(&emulator, &named, &["approve", &incident], None);
    assert!(!ok);
    assert!(denied[0]["note"].as_str().unwrap().contains("may not answer"), "{denied:?}");
    assert_eq!(p.incident_item(&incident).await.unwrap()["approval_state"], "awaiting");
}

/// A function URL request (payload format 2.0).
fn http(method: &str, query: &str, body: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": query,
        "headers": {"content-type": "application/x-www-form-urlencoded", "host": "approve.example.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "approve",
            "domainName": "approve.example.lambda-url.us-east-1.on.aws",
            "domainPrefix": "approve",
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test"},
            "requestId": "r-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "30/Nov/2026:07:00:00 +0000",
            "timeEpoch": 1_795_000_000_000i64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

async fn call(api: &mut RuntimeApi, n: &mut u32, event: Value) -> Value {
    *n += 1;
    match api.invoke(&format!("req-{n}"), event).await {
        Reply::Response(v) => v,
        other => panic!("expected a response: {other:?}"),
    }
}

fn token_of(message: &str) -> String {
    let at = message.find("?token=").expect("a link") + "?token=".len();
    message[at..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_function_url_answers_with_the_link_once_and_refuses_forged_changed_and_paused_answers() {
    let (emulator, p) = setup().await;
    let dir = policies("anyone-with-link");
    let mut api = RuntimeApi::start().await;
    let mut child = harness::runtime_api::function(bin(), &emulator, &api, &env(&dir));
    let mut n = 0;

    let arn = p.run_execution("approve-link-1", "apollo-full").await;
    let asked = call(&mut api, &mut n, p.status_event(&arn, false).await).await;
    assert_eq!(asked["resolution"], "awaiting-approval", "{asked}");
    let incident = asked["incident"].as_str().unwrap().to_string();
    let message = p.summaries().await.into_iter().last().unwrap()["Message"].as_str().unwrap().to_string();
    let token = token_of(&message);

    // Forged: another signature, another incident, another plan.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let page = call(&mut api, &mut n, http("GET", &format!("token={forged}"), "")).await;
    assert_eq!(page["statusCode"], 403, "{page}");
    let page = call(&mut api, &mut n, http("POST", "", &format!("token={forged}&decision=approve"))).await;
    assert_eq!(page["statusCode"], 403, "{page}");

    // Reviewing changes nothing; it shows the plan and a form that posts.
    let page = call(&mut api, &mut n, http("GET", &format!("token={token}"), "")).await;
    assert_eq!(page["statusCode"], 200, "{page}");
    assert_eq!(page["headers"]["cache-control"], "no-store");
    let body = page["body"].as_str().unwrap();
    assert!(body.contains("would raise timeout 300s→450s") && body.contains("method=\"post\""), "{body}");
    assert_eq!(p.function_settings().await, (300, 512));
    assert_eq!(p.incident_item(&incident).await.unwrap()["approval_state"], "awaiting");

    // A pause set while the request waits wins: the approval is taken, nothing is done.
    let (ok, _, err) = cli(&emulator, &dir, &["pause", "--reason", "maintenance", "--for", "1h"], None);
    assert!(ok, "{err}");
    let page = call(&mut api, &mut n, http("POST", "", &format!("token={token}&decision=approve"))).await;
    assert_eq!(page["statusCode"], 409, "{page}");
    let body = page["body"].as_str().unwrap();
    assert!(body.contains("Nothing was done") && body.contains("paused"), "{body}");
    assert_eq!(p.function_settings().await, (300, 512), "paused: nothing raised");
    let item = p.incident_item(&incident).await.unwrap();
    assert_eq!(item["approval_state"], "approved");
    assert!(item["approval_by"].as_str().unwrap().contains("203.0.113.9"), "{item}");

    // Replayed: refused with the reason.
    let page = call(&mut api, &mut n, http("POST", "", &format!("token={token}&decision=approve"))).await;
    assert_eq!(page["statusCode"], 409, "{page}");
    assert!(page["body"].as_str().unwrap().contains("approved already"), "{page}");
    let (ok, _, err) = cli(&emulator, &dir, &["resume"], None);
    assert!(ok, "{err}");
    assert_eq!(p.function_settings().await, (300, 512));

    // A link for an earlier plan of an incident: refused.
    let arn = p.run_execution("approve-link-2", "apollo-full").await;
    let second = call(&mut api, &mut n, p.status_event(&arn, false).await).await;
    let second_incident = second["incident"].as_str().unwrap().to_string();
    let message = p.summaries().await.into_iter().last().unwrap()["Message"].as_str().unwrap().to_string();
    let token = token_of(&message);
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(&p.sdk)
        .update_item()
        .table_name(STATE_TABLE)
        .key("pk", AttributeValue::S(format!("INCIDENT#{second_incident}")))
        .key("sk", AttributeValue::S("INCIDENT".into()))
        .update_expression("SET approval_digest = :d")
        .expression_attribute_values(":d", AttributeValue::S("0000another0plan".into()))
        .send()
        .await
        .unwrap();
    let page = call(&mut api, &mut n, http("POST", "", &format!("token={token}&decision=approve"))).await;
    assert_eq!(page["statusCode"], 409, "{page}");
    assert!(page["body"].as_str().unwrap().contains("another plan"), "{page}");
    assert_eq!(p.incident_item(&second_incident).await.unwrap()["approval_state"], "awaiting");
    child.kill().await.unwrap();
}
