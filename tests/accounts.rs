//! Organization-wide operation against the emulator: one central remediator acts in a
//! member account with the member role's credentials (the emulator places resources in
//! the account of the assumed role), touches nothing in its own account, and refuses an
//! account whose role cannot be assumed or that it is not configured for.

mod harness;

use std::path::Path;
use std::process::Output;

use harness::fault_proxy::{Fault, FaultProxy};
use harness::{outcomes, Emulator, Pipeline, ACCOUNT, REGION, RULES};
use serde_json::Value;

const MEMBER: &str = "111122223333";
const NO_ROLE: &str = "444455556666";
const STRANGER: &str = "999999999999";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_remediator"))
}

/// `remediator handle` as the central deployment: its own role in the central account,
/// the two member accounts, through `endpoint`.
fn handle_central(emulator: &Emulator, endpoint: &str, event: &Value) -> Output {
    run_central(emulator, endpoint, &["handle", "--event", "-"], event, &[])
}

/// `remediator ARGS` as the central deployment, with `event` on stdin and `env` added.
fn run_central(emulator: &Emulator, endpoint: &str, args: &[&str], event: &Value, env: &[(&str, &str)]) -> Output {
    let role = format!("arn:aws:iam::{ACCOUNT}:role/remediator");
    let members = format!("{MEMBER},{NO_ROLE}");
    let central = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("REMEDIATOR_ROLE_ARN", role.as_str()),
        ("REMEDIATOR_MEMBER_ACCOUNTS", members.as_str()),
    ];
    let env: Vec<(&str, &str)> = central.into_iter().chain(env.iter().copied()).collect();
    harness::run_with(bin(), emulator, args, Some(&event.to_string()), &env)
}

/// A command of the central deployment without stdin.
fn central_cli(emulator: &Emulator, args: &[&str]) -> Output {
    run_central(emulator, &emulator.endpoint, args, &Value::Null, &[])
}

/// EventBridge as a member account's administrator sees it.
async fn events_in(emulator: &Emulator, account: &str) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&harness::sdk_in(emulator, account).await)
}

async fn state(events: &aws_sdk_eventbridge::Client, rule: &str) -> String {
    events.describe_rule().name(rule).send().await.unwrap().state().unwrap().as_str().to_string()
}

/// The member account's CloudTrail `DisableRule`, forwarded to the central bus.
fn disabled_in(account: &str, rule: &str) -> Value {
    serde_json::json!({
        "version": "0", "id": format!("ct-{account}-{rule}"), "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.events", "account": account, "time": harness::now_rfc3339(), "region": REGION, "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventSource": "events.amazonaws.com", "eventName": "DisableRule",
            "awsRegion": REGION, "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::{account}:assumed-role/ops/maria")},
            "requestParameters": {"name": rule}, "responseElements": null, "eventType": "AwsApiCall"
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_accounts_failure_is_healed_there_and_nothing_else_is_touched() {
    let emulator = Emulator::start();
    let p = Pipeline::create(&emulator, bin()).await;
    let rule = RULES[0];
    // The same rule name in the central account and in two member accounts, all disabled.
    let central = p.events();
    central.disable_rule().name(rule).send().await.unwrap();
    let mut members = Vec::new();
    for account in [MEMBER, NO_ROLE] {
        let events = events_in(&emulator, account).await;
        events.put_rule().name(rule).schedule_expression("cron(0 6 * * ? *)").send().await.unwrap();
        events.disable_rule().name(rule).send().await.unwrap();
        assert_eq!(state(&events, rule).await, "DISABLED");
        members.push(events);
    }

    // The member account's event: enabled there, with the member role.
    let out = handle_central(&emulator, &emulator.endpoint, &disabled_in(MEMBER, rule));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert_eq!(outcome["actions"][0]["target"], format!("arn:aws:events:{REGION}:{MEMBER}:rule/{rule}"));
    assert_eq!(state(&members[0], rule).await, "ENABLED", "healed in the member account");
    assert_eq!(state(&central, rule).await, "DISABLED", "nothing touched in the central account");

    // The summary, `history` and `report` name the account.
    let incident = outcome["incident"].as_str().unwrap().to_string();
    let summary = p.summaries().await.into_iter().last().unwrap();
    assert!(summary["Message"].as_str().unwrap().contains(&format!("Account:       {MEMBER}")), "{summary}");
    let out = central_cli(&emulator, &["history", "--account", MEMBER, "--json"]);
    let rows = outcomes(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["incident"].as_str(), rows[0]["account"].as_str()), (Some(incident.as_str()), Some(MEMBER)));
    let out = central_cli(&emulator, &["history", "--account", ACCOUNT, "--json"]);
    assert!(outcomes(&out).is_empty(), "nothing happened in the central account");
    let out = central_cli(&emulator, &["report", "--since", "1d", "--format", "json", "--account", MEMBER]);
    let lines = outcomes(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["accounts"], serde_json::json!([MEMBER]), "{lines:?}");

    // Its undo is made in the member account too: the central rule (enabled meanwhile by
    // a person) is not the one disabled again.
    central.enable_rule().name(rule).send().await.unwrap();
    let out = central_cli(&emulator, &["undo", &incident]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(state(&members[0], rule).await, "DISABLED", "undone in the member account");
    assert_eq!(state(&central, rule).await, "ENABLED", "the central rule is left alone");
    central.disable_rule().name(rule).send().await.unwrap();
    // The undo's own reversal is suppressed for a while; a person lifts that.
    let member_rule = format!("arn:aws:events:{REGION}:{MEMBER}:rule/{rule}");
    let out = central_cli(&emulator, &["resume", "--target", &member_rule]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A policy that names a target in another account than the event's: refused, not
    // acted on with the member's clients (which would reach the member's rule of that name).
    let dir = std::env::temp_dir().join(format!("remediator-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let central_rule = format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}");
    std::fs::write(
        dir.join("p.yaml"),
        format!("policies:\n  - {{name: enable-central, match: {{source: [aws.events]}}, actions: [{{enable-rule: {{rule: \"{central_rule}\"}}}}]}}\n"),
    )
    .unwrap();
    let mut other = disabled_in(MEMBER, rule);
    other["id"] = "ct-other-account".into();
    members[0].disable_rule().name(rule).send().await.unwrap();
    let policies = dir.to_str().unwrap();
    let out = run_central(
        &emulator,
        &emulator.endpoint,
        &["handle", "--event", "-"],
        &other,
        &[("REMEDIATOR_POLICIES", policies)],
    );
    let outcome = &outcomes(&out)[0];
    let detail = outcome["actions"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("is in account {ACCOUNT}, but this incident is handled in account {MEMBER}")),
        "{outcome}"
    );
    assert_eq!(state(&members[0], rule).await, "DISABLED");
    assert_eq!(state(&central, rule).await, "DISABLED");

    // An account whose member role cannot be assumed: refused, never acted on with the
    // central account's credentials.
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    proxy.arm("AssumeRole", Fault::Deny, 10);
    let out = handle_central(&emulator, &proxy.endpoint, &disabled_in(NO_ROLE, rule));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("account {NO_ROLE}: its member role could not be assumed")), "{detail}");
    assert!(proxy.counts().get("AssumeRole").is_some_and(|n| *n >= 1), "{:?}", proxy.counts());
    assert_eq!(state(&members[1], rule).await, "DISABLED");
    assert_eq!(state(&central, rule).await, "DISABLED");

    // STS throttled: not a refusal; the event goes back for a later delivery.
    proxy.clear();
    proxy.arm("AssumeRole", Fault::Throttle, 100);
    let mut later = disabled_in(MEMBER, rule);
    later["id"] = "ct-sts-throttled".into();
    members[0].disable_rule().name(rule).send().await.unwrap();
    let out = handle_central(&emulator, &proxy.endpoint, &later);
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("\"retryable\":true"), "{line}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(state(&members[0], rule).await, "DISABLED", "nothing done yet");
    proxy.clear();
    let out = handle_central(&emulator, &proxy.endpoint, &later);
    let healed = &outcomes(&out)[0];
    assert_eq!(healed["resolution"], "remediated", "the next delivery heals: {healed}");
    assert_eq!(state(&members[0], rule).await, "ENABLED");

    // An account of the organization remediator is not configured for: ignored before
    // anything is written, without trying a role.
    proxy.reset_counts();
    let out = handle_central(&emulator, &proxy.endpoint, &disabled_in(STRANGER, rule));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "ignored", "{outcome}");
    assert!(outcome["note"].as_str().unwrap().contains("is neither remediator's own"), "{outcome}");
    assert_eq!(proxy.counts().get("AssumeRole"), None, "no role is even tried");
    assert_eq!(state(&central, rule).await, "DISABLED");

    // A person pauses the member account: its incidents are recorded, nothing is done.
    let out = central_cli(&emulator, &["pause", "--account", MEMBER, "--reason", "migration", "--for", "1h"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut paused = disabled_in(MEMBER, rule);
    paused["id"] = "ct-member-paused".into();
    members[0].disable_rule().name(rule).send().await.unwrap();
    let out = handle_central(&emulator, &emulator.endpoint, &paused);
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("paused (account 111122223333)"), "{outcome}");
    assert_eq!(state(&members[0], rule).await, "DISABLED");
    let out = central_cli(&emulator, &["pause", "--account", "1111-2222", "--reason", "x", "--for", "1h"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an AWS account id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = central_cli(&emulator, &["resume", "--account", MEMBER]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The member role's own calls come back through the member's CloudTrail: ignored.
    let mut own = disabled_in(MEMBER, rule);
    own["id"] = "ct-own".into();
    own["detail"]["userIdentity"]["arn"] =
        format!("arn:aws:sts::{MEMBER}:assumed-role/remediator-member/remediator").into();
    let out = handle_central(&emulator, &emulator.endpoint, &own);
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "ignored", "{outcome}");
}
