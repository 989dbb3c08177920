//! `make demo`: the moto server, a miniature Thera pipeline on it, and the failures of
//! shared/docs/failure-modes.md healed or reported by `remediator handle`, as a
//! subscriber and the state table see them.

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{outcomes, run, run_with, Emulator, Pipeline, RULES};
use serde_json::Value;

fn remediator_bin() -> PathBuf {
    // target/debug/examples/demo -> target/debug/remediator
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().and_then(|p| p.parent()).expect("target dir").join("remediator");
    assert!(bin.exists(), "{} is missing: run `cargo build` first", bin.display());
    bin
}

fn section(title: &str) {
    println!("\n=== {title} {}", "=".repeat(76usize.saturating_sub(title.len())));
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

fn show(label: &str, value: &Value) {
    println!("{label}:\n{}", indent(&serde_json::to_string_pretty(value).unwrap()));
}

struct Demo {
    bin: PathBuf,
    emulator: Emulator,
    pipeline: Pipeline,
}

impl Demo {
    /// Runs `remediator handle` on one event and prints what happened.
    async fn handle(&self, event: &Value, full_summary: bool) -> Value {
        println!(
            "\n$ remediator handle --event -   # the {} event",
            event["detail-type"].as_str().unwrap_or("EventBridge")
        );
        let out = run(&self.bin, &self.emulator, &["handle", "--event", "-"], Some(&event.to_string()));
        let mut outcome = outcomes(&out).remove(0);
        if let Some(inner) = outcome.get("outcome").cloned() {
            outcome = inner; // a failed remediation: the outcome travels with the error
        }
        if let Some(d) = outcome.get("diagnosis") {
            show("diagnosis", d);
        }
        println!("policy: {}", outcome["policy"]);
        for a in outcome["actions"].as_array().into_iter().flatten() {
            println!("action: {} -> {}: {}", a["action"], a["result"], a["detail"].as_str().unwrap_or_default());
        }
        println!("resolution: {}", outcome["resolution"]);
        if let Some(note) = outcome["note"].as_str() {
            println!("note: {note}");
        }
        for s in self.pipeline.summaries().await {
            println!("summary received by the SQS subscriber: {}", s["Subject"].as_str().unwrap_or_default());
            if full_summary {
                println!("{}", indent(s["Message"].as_str().unwrap_or_default()));
            }
        }
        outcome
    }

    fn remediator(&self, args: &[&str]) {
        self.remediator_with(args, None, &[]);
    }

    /// `remediator ARGS` with settings added (shown before the command), stdin, and its
    /// JSON outcomes returned.
    fn remediator_with(&self, args: &[&str], stdin: Option<&Value>, env: &[(&str, &str)]) -> Vec<Value> {
        let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let input = if stdin.is_some() { " < event.json" } else { "" };
        println!(
            "\n$ {}remediator {}{input}",
            shown.iter().map(|s| format!("{s} ")).collect::<String>(),
            args.join(" ")
        );
        let text = stdin.map(Value::to_string);
        let out = run_with(&self.bin, &self.emulator, args, text.as_deref(), env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{}", indent(&stdout));
        println!();
        stdout.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

#[tokio::main]
async fn main() {
    let bin = remediator_bin();
    println!("Starting the local AWS emulator (moto server) on 127.0.0.1...");
    let emulator = Emulator::start();
    println!("  endpoint: {}", emulator.endpoint);
    println!(
        "Building the miniature Thera pipeline: state machine {}, function {},",
        harness::STATE_MACHINE,
        harness::FUNCTION
    );
    println!("  rules {} and {}, versioned bucket {} (thera-pipeline/ data),", RULES[0], RULES[1], harness::BUCKET);
    println!(
        "  `remediator bootstrap` (table {}, topic {}), and an SQS queue subscribed to the topic.",
        harness::STATE_TABLE,
        harness::TOPIC
    );
    let pipeline = Pipeline::create(&emulator, &bin).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let demo = Demo { bin, emulator, pipeline };
    let p = &demo.pipeline;

    section("Row 3: the Apollo pull is throttled (Lambda.TooManyRequestsException)");
    p.set_apollo_quota("throttled").await;
    let throttled = p.run_execution("daily-2026-11-29", "apollo-delta").await;
    println!("execution {throttled}: {}", p.wait(&throttled).await);
    println!("(the throttling clears: the quota table says ok again)");
    p.set_apollo_quota("ok").await;
    let event = p.status_event(&throttled, false).await;
    let outcome = demo.handle(&event, true).await;
    if let Some(key) = outcome["incident"].as_str() {
        if let Some(mut item) = p.incident_item(key).await {
            for long in ["outcome", "summary_body"] {
                if let Some(v) = item.get_mut(long) {
                    *v = Value::String(format!("<{} characters>", v.as_str().map_or(0, str::len)));
                }
            }
            show("\nitem in the state table", &item);
        }
    }
    let restart = outcome["actions"][0]["follow_up"].as_str().unwrap_or_default().trim_end_matches("#0").to_string();
    println!("\nthe restarted execution: {}", p.wait(&restart).await);
    println!("its SUCCEEDED event verifies the remediation:");
    demo.handle(&p.status_event(&restart, false).await, false).await;

    section("The same failure delivered again (EventBridge is at-least-once)");
    demo.handle(&event, false).await;

    section("Row 1: the Apollo full pull runs out of its function's time");
    let slow = p.run_execution("full-2026-11-29", "apollo-full").await;
    println!("execution {slow}: {}", p.wait(&slow).await);
    demo.handle(&p.status_event(&slow, false).await, false).await;
    let (timeout, memory) = p.function_settings().await;
    println!("function {} now: timeout {timeout}s, memory {memory} MB", harness::FUNCTION);

    section("Row 1, near miss: the export state's own TimeoutSeconds runs out");
    let export = p.run_execution("export-2026-11-29", "apollo-export").await;
    println!("execution {export}: {}", p.wait(&export).await);
    demo.handle(&p.status_event(&export, false).await, false).await;
    let (timeout, _) = p.function_settings().await;
    println!("function {} still: timeout {timeout}s (a longer function timeout cannot help)", harness::FUNCTION);

    section("Row 2: out of memory (offline: the emulator cannot run a function out of memory)");
    println!("$ remediator explain --event thera-daily-failed-2022.json --history lambda-oom-history.json");
    let out = std::process::Command::new(&demo.bin)
        .args(["explain", "--policies", "policies", "--event", "policies/cases/fixtures/thera-daily-failed-2022.json"])
        .args(["--history", "policies/cases/fixtures/lambda-oom-history.json"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("explain");
    print!("{}", indent(&String::from_utf8_lossy(&out.stdout)));
    println!();

    section("Row 4: the Firecrawl pull has an invalid API key (HTTP 401)");
    let auth = p.run_execution("firecrawl-2026-11-29", "firecrawl").await;
    println!("execution {auth}: {}", p.wait(&auth).await);
    demo.handle(&p.status_event(&auth, true).await, true).await;

    section("Row 12 and row 6: an emergency stop, then the daily rule is disabled");
    demo.remediator(&["pause", "--reason", "emergency stop: bad Apollo data", "--for", "2h"]);
    let disabled = p.disable_rule(RULES[0]).await;
    demo.handle(&disabled, false).await;
    println!("rule {} is {} (the pause wins)", RULES[0], p.rule_state(RULES[0]).await);
    demo.remediator(&["resume"]);
    section("Row 6 again, outside the pause: the weekly rule was disabled 8 days ago");
    let now = remediator::clock::now();
    let disabled_at = remediator::event::format_timestamp(now - 8 * 86_400);
    let outcome = demo.handle(&p.disable_rule_at(RULES[1], &disabled_at).await, false).await;
    println!("rule {} is {}", RULES[1], p.rule_state(RULES[1]).await);
    let detail = outcome["actions"][0]["detail"].as_str().unwrap_or_default();
    if let Some(run) = detail.split("started catch-up run ").nth(1).and_then(|r| r.split(' ').next()) {
        println!("the missed run it started: {}", p.wait(run).await);
    }

    section("Row 7: pipeline data is deleted from the versioned bucket");
    let key = "thera-pipeline/apollo/latest.json";
    let deleted = p.delete_object(key).await;
    println!("s3://{}/{key}: {:?}", harness::BUCKET, p.object_body(key).await);
    demo.handle(&deleted, false).await;
    println!("s3://{}/{key}: {:?}", harness::BUCKET, p.object_body(key).await);

    section("Row 7, from the failure itself: a run fails reading its deleted input");
    p.delete_object(key).await;
    println!(
        "s3://{}/{key}: {:?} (deleted again, and no S3 event this time)",
        harness::BUCKET,
        p.object_body(key).await
    );
    let transform = p.run_execution("transform-2026-11-29", "transform").await;
    println!("execution {transform}: {}", p.wait(&transform).await);
    let outcome = demo.handle(&p.status_event(&transform, false).await, true).await;
    println!("s3://{}/{key}: {:?}", harness::BUCKET, p.object_body(key).await);
    let retried = outcome["actions"][1]["follow_up"].as_str().unwrap_or_default().trim_end_matches("#0").to_string();
    println!("\nthe run again: {}", p.wait(&retried).await);
    println!("its SUCCEEDED event closes the incident:");
    demo.handle(&p.status_event(&retried, false).await, false).await;

    section("Row 7, corrupted: the export is overwritten with an empty object");
    let emptied = p.overwrite_object(key, b"").await;
    println!("s3://{}/{key}: {:?}", harness::BUCKET, p.object_body(key).await);
    demo.handle(&emptied, false).await;
    println!("s3://{}/{key}: {:?}", harness::BUCKET, p.object_body(key).await);

    section("Row 14: a deployment of the pipeline's stack is stuck in UPDATE_ROLLBACK_FAILED");
    let cfn = aws_sdk_cloudformation::Client::new(&p.sdk);
    let template = r#"{"Resources": {"Inbox": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "thera-pipeline-prod-inbox"}}}}"#;
    let created = cfn.create_stack().stack_name("thera-pipeline-prod").template_body(template).send().await;
    let stack_id = created.expect("CreateStack").stack_id().unwrap_or_default().to_string();
    let stuck = serde_json::json!({
        "version": "0", "id": "cfn-demo", "detail-type": "CloudFormation Stack Status Change",
        "source": "aws.cloudformation", "account": harness::ACCOUNT, "time": harness::now_rfc3339(),
        "region": harness::REGION, "resources": [stack_id],
        "detail": {"stack-id": stack_id, "status-details": {"status": "UPDATE_ROLLBACK_FAILED",
            "status-reason": "The following resource(s) failed to update: [Inbox]."}}
    });
    println!("(the emulator cannot fail a deployment: the event is made up, the stack and its events are real)");
    demo.handle(&stuck, true).await;

    section("Row 13: stop the pipeline (the guide's emergency procedure), then lift the stop");
    let backfill = p.start_execution("backfill-2026-11", "backfill").await;
    println!("execution {backfill}: running");
    let stop = ["emergency-stop", "--pipeline", "thera-pipeline-", "--reason", "bad Apollo data", "--for", "2h"];
    demo.remediator(&[&stop[..], &["--dry-run"]].concat());
    demo.remediator(&stop);
    println!("execution {backfill}: {}", p.wait(&backfill).await);
    println!("rules: {} {}, {} {}", RULES[0], p.rule_state(RULES[0]).await, RULES[1], p.rule_state(RULES[1]).await);
    println!("the stop's own DisableRule of {}, as CloudTrail delivers it:", RULES[1]);
    let mut own = p.disable_rule(RULES[1]).await;
    own["id"] = Value::String("ct-emergency-stop-weekly".into());
    demo.handle(&own, false).await;
    demo.remediator(&["emergency-stop", "--pipeline", "thera-pipeline-", "--lift"]);
    println!("rules: {} {}, {} {}", RULES[0], p.rule_state(RULES[0]).await, RULES[1], p.rule_state(RULES[1]).await);

    section("Organization: a member account's rule is disabled; healed from the central account");
    const MEMBER: &str = "111122223333";
    let member_events = aws_sdk_eventbridge::Client::new(&harness::sdk_in(&demo.emulator, MEMBER).await);
    let rule = RULES[0];
    member_events.put_rule().name(rule).schedule_expression("cron(0 6 * * ? *)").send().await.expect("PutRule");
    member_events.disable_rule().name(rule).send().await.expect("DisableRule");
    let member_state = async || {
        let out = member_events.describe_rule().name(rule).send().await.expect("DescribeRule");
        out.state().map(|s| s.as_str().to_string()).unwrap_or_default()
    };
    println!("account {MEMBER}: rule {rule} {}; central account: {}", member_state().await, p.rule_state(rule).await);
    let forwarded = serde_json::json!({
        "version": "0", "id": "ct-member-disable", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.events", "account": MEMBER, "time": harness::now_rfc3339(), "region": harness::REGION,
        "resources": [], "detail": {"eventSource": "events.amazonaws.com", "eventName": "DisableRule",
            "awsRegion": harness::REGION, "requestParameters": {"name": rule},
            "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::{MEMBER}:assumed-role/ops/maria")}}
    });
    let central_role = format!("arn:aws:iam::{}:role/remediator", harness::ACCOUNT);
    let central = [("REMEDIATOR_ROLE_ARN", central_role.as_str()), ("REMEDIATOR_MEMBER_ACCOUNTS", MEMBER)];
    println!("(the member account's CloudTrail event, forwarded to the central bus; remediator assumes role remediator-member there)");
    let healed = demo.remediator_with(&["handle", "--event", "-"], Some(&forwarded), &central);
    if let Some(o) = healed.first() {
        println!("resolution: {}; action on {}", o["resolution"], o["actions"][0]["target"]);
    }
    println!("account {MEMBER}: rule {rule} {}; central account: {}", member_state().await, p.rule_state(rule).await);
    for s in p.summaries().await {
        println!("summary received by the SQS subscriber: {}", s["Subject"].as_str().unwrap_or_default());
    }
    demo.remediator_with(&["history", "--since", "1h", "--account", MEMBER], None, &central);

    section("Human approval: a policy asks a person before it raises a timeout");
    let dir = std::env::temp_dir().join(format!("remediator-demo-approval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("policy directory");
    let policy = "policies:\n  - name: raise-timeout-on-approval\n    match:\n      source: [aws.states]\n      diagnosis: {timeoutKind: [function]}\n    actions:\n      - raise-timeout: {factor: 1.5, max_seconds: 900}\n    approval: {expires: 1h, approvers: anyone-with-link}\n";
    std::fs::write(dir.join("approval.yaml"), policy).expect("policy file");
    println!("{}", indent(policy));
    let policies = dir.to_string_lossy().into_owned();
    let with_policy = [("REMEDIATOR_POLICIES", policies.as_str())];
    let timed_out = p.run_execution("full-approval-2026-11-30", "apollo-full").await;
    println!("function timeout before: {} s", p.function_settings().await.0);
    let asked =
        demo.remediator_with(&["handle", "--event", "-"], Some(&p.status_event(&timed_out, false).await), &with_policy);
    for s in p.summaries().await {
        println!("summary received by the SQS subscriber: {}", s["Subject"].as_str().unwrap_or_default());
        println!("{}", indent(s["Message"].as_str().unwrap_or_default()));
    }
    println!("function timeout while the request waits: {} s", p.function_settings().await.0);
    let incident = asked.first().and_then(|o| o["incident"].as_str()).unwrap_or_default().to_string();
    demo.remediator_with(&["approve", &incident], None, &with_policy);
    println!("function timeout after the approval: {} s", p.function_settings().await.0);
    demo.remediator_with(&["approve", &incident], None, &with_policy);
    for s in p.summaries().await {
        println!("summary received by the SQS subscriber: {}", s["Subject"].as_str().unwrap_or_default());
    }
    let _ = std::fs::remove_dir_all(&dir);

    section("What the state table says");
    demo.remediator(&["history", "--since", "1h"]);
    demo.remediator(&["report", "--since", "1d"]);
    println!("executions of {}: {:?}", harness::STATE_MACHINE, p.execution_names().await);
    println!("\nDone. The emulator stops with this process.");
}
