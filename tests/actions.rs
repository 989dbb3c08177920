//! End-to-end tests of the remediation actions and their guards, against the moto
//! server through the real AWS SDK: one row of shared/docs/failure-modes.md each.

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{outcomes, run, run_with, Emulator, Pipeline, FUNCTION, RULES};
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_remediator"))
}

async fn setup() -> (Emulator, Pipeline) {
    let emulator = Emulator::start();
    let pipeline = Pipeline::create(&emulator, bin()).await;
    // The function's LastModified must precede the failures by at least a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (emulator, pipeline)
}

fn handle(emulator: &Emulator, events: &[Value]) -> Vec<Value> {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    let out = run(bin(), emulator, &["handle", "--event", "-"], Some(&text));
    assert!(
        out.status.success(),
        "stderr: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    outcomes(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lambda_timeout_raises_the_timeout_then_restarts_the_execution() {
    let (emulator, p) = setup().await;
    let arn = p.run_execution("full-2026-11-29", "apollo-full").await;
    let event = p.status_event(&arn, false).await;
    let outcome = &handle(&emulator, &[event])[0];
    assert_eq!(outcome["policy"], "raise-timeout-then-redrive", "{outcome}");
    let diagnosis = &outcome["diagnosis"];
    assert_eq!(diagnosis["state"], "PullApolloFull");
    assert_eq!(diagnosis["error"], "Sandbox.Timedout");
    assert!(diagnosis["cause"].as_str().unwrap().contains("Task timed out after 300.00 seconds"), "{diagnosis}");
    assert_eq!(diagnosis["resource"], format!("arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"));
    assert_eq!(diagnosis["timeoutKind"], "function");
    assert_eq!(diagnosis["timedOutAfterSeconds"], 300.0);
    assert_eq!(outcome["actions"][0]["detail"], "raised timeout 300s→450s", "{outcome}");
    assert_eq!(outcome["actions"][0]["before"]["timeout"], 300);
    assert!(outcome["actions"][1]["detail"].as_str().unwrap().starts_with("restarted as"), "{outcome}");
    assert_eq!(outcome["resolution"], "remediated");
    assert_eq!(p.function_settings().await, (450, 512));
    let subject = p.summaries().await[0]["Subject"].as_str().unwrap().to_string();
    assert_eq!(subject, "[timeout 300s→450s, restarted] thera-pipeline-prod-daily: Sandbox.Timedout at PullApolloFull");

    // The restart times out too, now at 450 s: the first incident is still failing, the
    // second is attempt 2 of 2 and raises once more; a third would be refused.
    let restart = outcome["actions"][1]["follow_up"].as_str().unwrap().trim_end_matches("#0").to_string();
    assert_eq!(p.wait(&restart).await, "FAILED");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = &handle(&emulator, &[p.status_event(&restart, false).await])[0];
    assert!(second["note"].as_str().unwrap().contains("still failing"), "{second}");
    assert_eq!(p.incident_item(outcome["incident"].as_str().unwrap()).await.unwrap()["verification"], "still-failing");
    assert_eq!(second["diagnosis"]["timedOutAfterSeconds"], 450.0, "{second}");
    assert_eq!(second["actions"][0]["detail"], "raised timeout 450s→675s", "{second}");
    assert_eq!(second["actions"][1]["attempt"], "2 of 2");
    let third_run = second["actions"][1]["follow_up"].as_str().unwrap().trim_end_matches("#0").to_string();
    assert_eq!(p.wait(&third_run).await, "FAILED");
    let third = &handle(&emulator, &[p.status_event(&third_run, false).await])[0];
    assert_eq!(third["resolution"], "refused", "{third}");
    assert!(third["actions"][1]["detail"].as_str().unwrap().contains("attempts exhausted"), "{third}");
    assert_eq!(third["actions"][0]["result"], "refused", "no raise without a retry to use it: {third}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_failures_from_one_timeout_raises_once_and_retries_each() {
    let (emulator, p) = setup().await;
    // Twenty runs time out together, as when one timeout is too short for everyone.
    let mut arns = Vec::new();
    for i in 0..20 {
        arns.push(p.start_execution(&format!("burst-{i}"), "apollo-full").await);
    }
    let mut events = Vec::new();
    for arn in &arns {
        assert_eq!(p.wait(arn).await, "FAILED");
        events.push(p.status_event(arn, false).await);
    }
    let all = handle(&emulator, &events);
    let raised: Vec<&Value> =
        all.iter().filter(|o| o["actions"][0]["detail"].as_str().unwrap().starts_with("raised")).collect();
    assert_eq!(raised.len(), 1, "exactly one raise: {all:#?}");
    for o in &all {
        assert!(o["actions"][1]["detail"].as_str().unwrap().starts_with("restarted as"), "{o}");
    }
    assert_eq!(p.function_settings().await.0, 450, "raised once, not compounded");
    assert_eq!(p.execution_names().await.len(), 40, "twenty failures, twenty restarts");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_the_timeout_is_not_raised_and_the_failure_is_escalated() {
    let (emulator, p) = setup().await;
    p.lambda().update_function_configuration().function_name(FUNCTION).timeout(900).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let arn = p.run_execution("capped", "apollo-full").await;
    let outcome = &handle(&emulator, &[p.status_event(&arn, false).await])[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("already at the cap of 900s"));
    assert_eq!(outcome["actions"][1]["result"], "skipped", "no retry after a refused raise");
    assert_eq!(p.function_settings().await.0, 900);
    assert_eq!(p.execution_names().await.len(), 1);
    assert!(p.summaries().await[0]["Subject"].as_str().unwrap().starts_with("[refused]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_states_own_timeout_is_reported_and_the_functions_timeout_is_left_alone() {
    let (emulator, p) = setup().await;
    let function = format!("arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}");
    let arn = p.run_execution("export-2026-11-29", "apollo-export").await;
    let event = p.status_event(&arn, false).await;
    let outcome = &handle(&emulator, std::slice::from_ref(&event))[0];
    assert_eq!(outcome["policy"], "report-state-timeout", "{outcome}");
    let diagnosis = &outcome["diagnosis"];
    assert_eq!(diagnosis["state"], "ExportApollo");
    assert_eq!(diagnosis["error"], "States.Timeout");
    assert_eq!(diagnosis["resource"], function);
    assert_eq!(diagnosis["timeoutKind"], "state", "{diagnosis}");
    assert_eq!(diagnosis["stateTimeoutSeconds"], 1);
    assert!(diagnosis.get("timedOutAfterSeconds").is_none(), "{diagnosis}");
    assert_eq!(outcome["resolution"], "notified", "{outcome}");
    assert_eq!(p.function_settings().await, (300, 512), "the function's timeout is not raised");
    assert_eq!(p.execution_names().await.len(), 1, "nothing restarted");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1);
    let message = summaries[0]["Message"].as_str().unwrap();
    assert!(message.contains("the state's TimeoutSeconds (1 s) ran out"), "{message}");
    assert!(message.contains("not the function's timeout, so it was not raised"), "{message}");

    // A policy that would raise the timeout on any States.Timeout is stopped by apply's
    // own check: the time that ran out was not the function's.
    let arn = p.run_execution("export-raise-2026-11-29", "apollo-export").await;
    let event = p.status_event(&arn, false).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "policies:\n  - {name: raise-on-any-timeout, match: {source: [aws.states], diagnosis: {error: [States.Timeout]}}, \
         actions: [{raise-timeout: {factor: 1.5, max_seconds: 900}}]}\n",
    )
    .unwrap();
    let out = run_with(
        bin(),
        &emulator,
        &["handle", "--event", "-"],
        Some(&event.to_string()),
        &[("REMEDIATOR_POLICIES", dir.path().to_str().unwrap())],
    );
    let refused = &outcomes(&out)[0];
    assert_eq!(refused["actions"][0]["result"], "refused", "{refused}");
    let detail = refused["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("the state (its TimeoutSeconds) timed out, not the function"), "{detail}");
    assert_eq!(p.function_settings().await, (300, 512));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_pipeline_rule_is_enabled_again() {
    let (emulator, p) = setup().await;
    let event = p.disable_rule(RULES[0]).await;
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED");
    let outcome = &handle(&emulator, &[event])[0];
    assert_eq!(outcome["policy"], "reenable-pipeline-rules", "{outcome}");
    assert_eq!(outcome["resolution"], "remediated");
    assert_eq!(outcome["actions"][0]["before"]["state"], "DISABLED");
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED");
}

// Row 6 in full: a rule disabled 30 hours before its event is handled missed its daily
// 06:00 fire. Enabling it starts that run once, with the input the rule's target would
// have sent, under a name made from the rule and the fire time. A rule found enabled
// already is not caught up (which fires ran is not known); a pause or an allow-list
// that covers the state machine but not the rule refuses the catch-up and says so,
// while the enable stays done; a pause of the pipeline stops both.
#[tokio::test(flavor = "multi_thread")]
async fn a_re_enabled_rule_starts_the_run_it_missed_once_with_the_targets_input() {
    use remediator::schedule::catch_up_name;
    let (emulator, p) = setup().await;
    let now = remediator::clock::now();
    let disabled_at = remediator::event::format_timestamp(now - 30 * 3600);
    let event = p.disable_rule_at(RULES[0], &disabled_at).await;
    // The daily rule fires at 06:00 UTC: the newest 06:00 before now, worked out here.
    let fire = (now - 6 * 3600).div_euclid(86_400) * 86_400 + 6 * 3600;
    let fired = remediator::event::format_timestamp(fire);
    assert!(fired.ends_with("T06:00:00Z") && fire <= now && now - fire < 86_400, "{fired}");
    let outcome = &handle(&emulator, &[event])[0];
    assert_eq!(outcome["policy"], "reenable-pipeline-rules", "{outcome}");
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED");
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    let name = catch_up_name(RULES[0], fire);
    assert_eq!(name, format!("catch-up-{}-{}Z", RULES[0], fired[..16].replace(['-', ':'], "")));
    assert!(detail.contains("started catch-up run") && detail.contains(&name), "{detail}");
    assert!(detail.contains(&format!("for the {fired} fire")), "{detail}");
    let names = p.execution_names().await;
    assert_eq!(names, std::slice::from_ref(&name), "exactly the one missed run");
    let started = p
        .sfn
        .describe_execution()
        .execution_arn(format!("{}:{name}", p.state_machine_arn.replacen(":stateMachine:", ":execution:", 1)))
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(started.input().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({"job": "apollo-delta", "since": fired, "label": format!("{} at {fired}", RULES[0])}),
        "the input the rule's input transformer makes of the scheduled event"
    );
    let summary = p.summaries().await.remove(0);
    assert!(summary["Subject"].as_str().unwrap().starts_with("[enabled, caught up]"), "{}", summary["Subject"]);

    // The same call delivered as another event (a copy from a second trail), after the
    // rule was enabled: its fires since are not known, so nothing is started.
    let mut again = p.disable_rule_at(RULES[0], &disabled_at).await;
    p.events().enable_rule().name(RULES[0]).send().await.unwrap();
    again["id"] = "ct-disable-copy".into();
    let outcome = &handle(&emulator, &[again])[0];
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED", "{outcome}");
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("nothing to do; no catch-up"), "{detail}");
    assert_eq!(p.execution_names().await, std::slice::from_ref(&name));

    // The state machine paused, not the rule: enabled, the catch-up refused and said so.
    let machine = p.state_machine_arn.clone();
    let out =
        run(bin(), &emulator, &["pause", "--target", &machine, "--reason", "backfill running", "--for", "1h"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut paused_machine = p.disable_rule_at(RULES[0], &disabled_at).await;
    paused_machine["id"] = "ct-disable-machine-paused".into();
    let outcome = &handle(&emulator, &[paused_machine])[0];
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED", "{outcome}");
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("REFUSED") && detail.contains("backfill running"), "{detail}");
    let subject = p.summaries().await.into_iter().last().unwrap()["Subject"].as_str().unwrap().to_string();
    assert!(subject.starts_with("[enabled, catch-up REFUSED]"), "{subject}");
    assert_eq!(p.execution_names().await, std::slice::from_ref(&name));
    let out = run(bin(), &emulator, &["resume", "--target", &machine], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // An allow-list with the rules but not the state machines: the same.
    let mut outside = p.disable_rule_at(RULES[0], &disabled_at).await;
    outside["id"] = "ct-disable-machine-outside".into();
    let allow = "arn:aws:events:*:*:rule/thera-pipeline-*";
    let out = run_with(
        bin(),
        &emulator,
        &["handle", "--event", "-"],
        Some(&outside.to_string()),
        &[("REMEDIATOR_ALLOW", allow)],
    );
    let outcome = &outcomes(&out)[0];
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("REFUSED") && detail.contains("outside the allow-list"), "{detail}");
    assert_eq!(p.execution_names().await, std::slice::from_ref(&name));

    // Paused for the pipeline: the rule stays disabled and nothing is started.
    let out = run(
        bin(),
        &emulator,
        &["pause", "--pipeline", "thera-pipeline-", "--reason", "stopped on purpose", "--for", "1h"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut paused = p.disable_rule_at(RULES[1], &remediator::event::format_timestamp(now - 8 * 86400)).await;
    paused["id"] = "ct-disable-weekly".into();
    let outcome = &handle(&emulator, &[paused])[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    assert_eq!(p.rule_state(RULES[1]).await, "DISABLED");
    assert_eq!(p.execution_names().await, [name], "no catch-up while paused");
}

#[tokio::test(flavor = "multi_thread")]
async fn while_paused_a_disabled_rule_stays_disabled_and_a_summary_says_why() {
    let (emulator, p) = setup().await;
    // A pause of nothing is an error, not a silent no-op (issue 10, item 5).
    let unknown = run(bin(), &emulator, &["pause", "--policy", "reenable-rules", "--reason", "x", "--for", "1h"], None);
    assert_ne!(unknown.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no such policy"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let bad = run(bin(), &emulator, &["pause", "--target", "thera-pipeline-*", "--reason", "x", "--for", "1h"], None);
    assert_ne!(bad.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an ARN"), "{}", String::from_utf8_lossy(&bad.stderr));
    let out = run(bin(), &emulator, &["pause", "--reason", "emergency stop: bad Apollo data", "--for", "2h"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let event = p.disable_rule(RULES[1]).await;
    let outcome = &handle(&emulator, &[event])[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("emergency stop: bad Apollo data"));
    assert_eq!(p.rule_state(RULES[1]).await, "DISABLED", "the pause wins");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 1);
    assert!(summaries[0]["Subject"].as_str().unwrap().starts_with("[paused]"), "{}", summaries[0]["Subject"]);

    // After `resume`, the next disable is healed.
    assert!(run(bin(), &emulator, &["resume"], None).status.success());
    let again = p.disable_rule(RULES[0]).await;
    assert_eq!(handle(&emulator, &[again])[0]["resolution"], "remediated");
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_pipeline_object_is_restored_from_its_previous_version() {
    let (emulator, p) = setup().await;
    let key = "thera-pipeline/apollo/latest.json";
    let event = p.delete_object(key).await;
    assert_eq!(p.object_body(key).await, None);
    let outcome = &handle(&emulator, std::slice::from_ref(&event))[0];
    assert_eq!(outcome["policy"], "restore-deleted-pipeline-data", "{outcome}");
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    assert_eq!(p.object_body(key).await.as_deref(), Some("{\"contacts\": 1200}"));
    // A second delivery acts on nothing; a restore of a present object overwrites nothing.
    assert_eq!(handle(&emulator, &[event])[0]["resolution"], "duplicate");
}

// Row 7, corrupted: an export truncated to nothing gets its previous version copied back
// (the guide's copy-object), checked; `undo` deletes the copy, so the version it
// replaced is current again; a copy written over since is not undone.
#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_pipeline_object_gets_its_previous_version_copied_back_and_undo_puts_it_back() {
    let (emulator, p) = setup().await;
    let key = "thera-pipeline/apollo/latest.json";
    let event = p.overwrite_object(key, b"").await;
    assert_eq!(p.object_body(key).await.as_deref(), Some(""));
    let outcome = handle(&emulator, std::slice::from_ref(&event)).remove(0);
    assert_eq!(outcome["policy"], "copy-back-empty-pipeline-data", "{outcome}");
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    let detail = outcome["actions"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("copy version") && detail.contains("(which is empty)") && detail.contains("is current"),
        "{detail}"
    );
    assert_eq!(p.object_body(key).await.as_deref(), Some("{\"contacts\": 1200}"));
    let summary = p.summaries().await.remove(0);
    assert!(summary["Subject"].as_str().unwrap().starts_with("[copied back]"), "{}", summary["Subject"]);

    // Undo: the copy is deleted, the empty version is current again (as it was).
    let incident = outcome["incident"].as_str().unwrap();
    let out = run(bin(), &emulator, &["undo", incident], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is current again"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(p.object_body(key).await.as_deref(), Some(""));

    // The undo paused the object (its reversal is not remediated); a person resumes it.
    // Copied back again (a new event), then written over by the pipeline: undo refuses.
    let target = "arn:aws:s3:::thera-pipeline-data/thera-pipeline/apollo/latest.json";
    let out = run(bin(), &emulator, &["resume", "--target", target], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut again = p.overwrite_object(key, b"").await;
    again["id"] = "s3-created-again".into();
    let outcome = handle(&emulator, &[again]).remove(0);
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    p.overwrite_object(key, b"{\"contacts\": 1300}").await;
    let out = run(bin(), &emulator, &["undo", outcome["incident"].as_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "a refused undo is reported");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("changed after remediator copied"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(p.object_body(key).await.as_deref(), Some("{\"contacts\": 1300}"));
}

// Row 14: a failed deployment of a pipeline stack is diagnosed from the stack's events
// (read from CloudFormation) and reported with the guide's commands; nothing is rolled
// back by default, and the opt-in action refuses a stack that is not stuck. (The
// emulator cannot fail a deployment: its events are all COMPLETE, so the diagnosis
// falls back to the stack's own status, and ContinueUpdateRollback is not reached.)
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deployment_is_reported_with_the_guides_commands_and_not_rolled_back() {
    let (emulator, p) = setup().await;
    let cfn = aws_sdk_cloudformation::Client::new(&p.sdk);
    let template = r#"{"Resources": {"Inbox": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "thera-pipeline-prod-inbox"}}}}"#;
    let stack_id = cfn
        .create_stack()
        .stack_name("thera-pipeline-prod")
        .template_body(template)
        .send()
        .await
        .expect("CreateStack")
        .stack_id()
        .unwrap()
        .to_string();
    let event = serde_json::json!({
        "version": "0", "id": "cfn-rollback-failed", "detail-type": "CloudFormation Stack Status Change",
        "source": "aws.cloudformation", "account": harness::ACCOUNT, "time": harness::now_rfc3339(), "region": harness::REGION,
        "resources": [stack_id],
        "detail": {"stack-id": stack_id, "status-details": {"status": "UPDATE_ROLLBACK_FAILED",
            "status-reason": "The following resource(s) failed to update: [Inbox]."}}
    });
    let outcome = handle(&emulator, std::slice::from_ref(&event)).remove(0);
    assert_eq!(outcome["policy"], "report-failed-deployments", "{outcome}");
    assert_eq!(outcome["resolution"], "notified", "{outcome}");
    assert_eq!(outcome["diagnosis"]["resourceType"], "AWS::CloudFormation::Stack", "{outcome}");
    assert_eq!(outcome["diagnosis"]["error"], "UPDATE_ROLLBACK_FAILED", "{outcome}");
    let summary = p.summaries().await.remove(0);
    let message = summary["Message"].as_str().unwrap();
    assert!(summary["Subject"].as_str().unwrap().contains("thera-pipeline-prod"), "{}", summary["Subject"]);
    for command in [
        "aws cloudformation describe-stack-events --stack-name thera-pipeline-prod --region us-east-1",
        "aws cloudformation continue-update-rollback --stack-name thera-pipeline-prod --region us-east-1",
    ] {
        assert!(message.contains(command), "{message}");
    }

    // Opted in: the stack is not stuck in UPDATE_ROLLBACK_FAILED, so nothing is called.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "policies:\n  - {name: continue-failed-rollbacks, match: {source: [aws.cloudformation], detail: {status-details: {status: [UPDATE_ROLLBACK_FAILED]}}}, actions: [continue-rollback]}\n",
    )
    .unwrap();
    let mut again = event.clone();
    again["id"] = "cfn-rollback-failed-opt-in".into();
    let out = run_with(
        bin(),
        &emulator,
        &["handle", "--event", "-"],
        Some(&again.to_string()),
        &[("REMEDIATOR_POLICIES", dir.path().to_str().unwrap())],
    );
    let refused = &outcomes(&out)[0];
    assert_eq!(refused["actions"][0]["action"], "continue-rollback", "{refused}");
    assert_eq!(refused["actions"][0]["result"], "refused", "{refused}");
    let detail = refused["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("is CREATE_COMPLETE, not UPDATE_ROLLBACK_FAILED"), "{detail}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_outside_the_allow_list_is_refused() {
    let (emulator, p) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "policies:\n  - {name: enable-any-rule, match: {source: [aws.events], detail: {eventName: [DisableRule]}}, actions: [enable-rule]}\n",
    )
    .unwrap();
    let event = p.disable_rule(RULES[0]).await;
    let policies = dir.path().to_str().unwrap();
    let out = run_with(
        bin(),
        &emulator,
        &["handle", "--event", "-"],
        Some(&event.to_string()),
        &[("REMEDIATOR_POLICIES", policies), ("REMEDIATOR_ALLOW", "arn:aws:events:*:*:rule/billing-*")],
    );
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("outside the allow-list"));
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_errors_alarm_is_reported_and_its_return_to_ok_closes_the_incident() {
    let (emulator, p) = setup().await;
    let all = handle(&emulator, &[p.errors_alarm_event("ALARM", "OK"), p.errors_alarm_event("OK", "ALARM")]);
    assert_eq!(all[0]["resolution"], "notified", "{}", all[0]);
    assert_eq!(all[0]["diagnosis"]["resource"], format!("arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"));
    assert_eq!(all[1]["resolution"], "healed", "the alarm back to OK closes the incident: {}", all[1]);
    let key = all[0]["incident"].as_str().unwrap();
    assert_eq!(p.incident_item(key).await.unwrap()["verification"], "healed");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 2, "the alarm, then its end");
    assert!(summaries[1]["Subject"].as_str().unwrap().ends_with("alarm back to OK"));
    // INSUFFICIENT_DATA is neither a failure nor an end.
    let other = handle(&emulator, &[p.errors_alarm_event("INSUFFICIENT_DATA", "OK")]);
    assert_eq!(other[0]["resolution"], "ignored");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_by_remediators_own_role_session_is_ignored() {
    let (emulator, p) = setup().await;
    let mut event = p.disable_rule(RULES[0]).await;
    event["detail"]["userIdentity"]["arn"] =
        Value::from("arn:aws:sts::123456789012:assumed-role/remediator-role/remediator-prod");
    let out = run_with(
        bin(),
        &emulator,
        &["handle", "--event", "-"],
        Some(&event.to_string()),
        &[("AWS_LAMBDA_FUNCTION_NAME", "remediator-prod")],
    );
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["resolution"], "ignored", "{outcome}");
    assert!(outcome["note"].as_str().unwrap().contains("caused by remediator itself"));
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_disabled_again_and_again_is_enabled_at_most_max_attempts_times() {
    let (emulator, p) = setup().await;
    for round in 0..3 {
        let mut event = p.disable_rule(RULES[0]).await;
        event["id"] = Value::from(format!("ct-{round}"));
        assert_eq!(handle(&emulator, &[event])[0]["resolution"], "remediated", "round {round}");
    }
    let mut event = p.disable_rule(RULES[0]).await;
    event["id"] = Value::from("ct-3");
    let outcome = &handle(&emulator, &[event])[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("attempts exhausted: 3 of 3 within 1d"));
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED", "remediator stops fighting whoever disables it");
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_state_is_kept_per_target_and_an_earlier_versions_attempts_and_circuits_still_hold() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (emulator, p) = setup().await;
    let rule_arn = |rule: &str| format!("arn:aws:events:us-east-1:123456789012:rule/{rule}");
    let mut event = p.disable_rule(RULES[0]).await;
    event["id"] = Value::from("ct-shard-0");
    assert_eq!(handle(&emulator, &[event])[0]["resolution"], "remediated");
    // The attempt is in the target's own partition; the shared one holds pauses only.
    let items = p.state_items().await;
    let attempts: Vec<&Value> =
        items.iter().filter(|i| i["sk"].as_str().is_some_and(|s| s.starts_with("attempt#"))).collect();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["pk"], format!("GUARD#{}", rule_arn(RULES[0])));

    // An earlier version kept two attempts of the rule and an open circuit of the other
    // rule in the shared partition (and wrote no marker that they were moved): both still
    // count after the upgrade.
    let ddb = aws_sdk_dynamodb::Client::new(&p.sdk);
    ddb.delete_item()
        .table_name(harness::STATE_TABLE)
        .key("pk", AttributeValue::S("GUARD".into()))
        .key("sk", AttributeValue::S("sharded".into()))
        .send()
        .await
        .unwrap();
    let now = harness::now_rfc3339();
    let now = remediator::event::parse_timestamp(&now).unwrap();
    for (i, at) in [now - 60, now - 30].into_iter().enumerate() {
        ddb.put_item()
            .table_name(harness::STATE_TABLE)
            .item("pk", AttributeValue::S("GUARD".into()))
            .item("sk", AttributeValue::S(format!("attempt#reenable-pipeline-rules#{}#{at}#{i}", rule_arn(RULES[0]))))
            .item("policy", AttributeValue::S("reenable-pipeline-rules".into()))
            .item("target", AttributeValue::S(rule_arn(RULES[0])))
            .item("at", AttributeValue::N(at.to_string()))
            .send()
            .await
            .unwrap();
    }
    ddb.put_item()
        .table_name(harness::STATE_TABLE)
        .item("pk", AttributeValue::S("GUARD".into()))
        .item("sk", AttributeValue::S(format!("circuit#{}", rule_arn(RULES[1]))))
        .item("failed_incidents", AttributeValue::Ss(vec!["a".into(), "b".into(), "c".into()]))
        .item("open", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let mut event = p.disable_rule(RULES[0]).await;
    event["id"] = Value::from("ct-shard-1");
    let outcome = &handle(&emulator, &[event])[0];
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("attempts exhausted: 3 of 3"), "{outcome}");
    let mut event = p.disable_rule(RULES[1]).await;
    event["id"] = Value::from("ct-shard-2");
    let outcome = &handle(&emulator, &[event])[0];
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("circuit open"), "{outcome}");
    assert_eq!(p.rule_state(RULES[1]).await, "DISABLED");

    // The sweep moves them to their targets' partitions, and they keep counting there.
    let out = run(bin(), &emulator, &["sweep", "--state-machine", &p.state_machine_arn], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let items = p.state_items().await;
    let shared: Vec<&Value> =
        items.iter().filter(|i| i["pk"] == "GUARD" && i["sk"].as_str() != Some("sharded")).collect();
    assert!(shared.is_empty(), "nothing but pauses stays shared: {shared:?}");
    let moved = items.iter().filter(|i| i["pk"] == format!("GUARD#{}", rule_arn(RULES[0]))).count();
    assert_eq!(moved, 3, "the new attempt and the two moved: {items:?}");
    let mut event = p.disable_rule(RULES[0]).await;
    event["id"] = Value::from("ct-shard-after-move");
    let outcome = &handle(&emulator, &[event])[0];
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("attempts exhausted: 3 of 3"), "{outcome}");
    let mut event = p.disable_rule(RULES[1]).await;
    event["id"] = Value::from("ct-shard-circuit-after-move");
    let outcome = &handle(&emulator, &[event])[0];
    assert!(outcome["actions"][0]["detail"].as_str().unwrap().contains("circuit open"), "{outcome}");
    // `reset` closes the moved circuit.
    let reset = run(bin(), &emulator, &["reset", &rule_arn(RULES[1])], None);
    assert!(String::from_utf8_lossy(&reset.stdout).contains("closed"), "{}", String::from_utf8_lossy(&reset.stdout));
    let mut event = p.disable_rule(RULES[1]).await;
    event["id"] = Value::from("ct-shard-3");
    assert_eq!(handle(&emulator, &[event])[0]["resolution"], "remediated");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_three_failed_remediations_the_circuit_opens_until_reset() {
    let (emulator, p) = setup().await;
    // The rule is gone: every attempt to enable it fails, and no redelivery can help (a
    // missing resource is recorded and reported once per incident, not retried).
    let mut template = p.disable_rule(RULES[1]).await;
    p.events().remove_targets().rule(RULES[1]).ids("pipeline").send().await.unwrap();
    p.events().delete_rule().name(RULES[1]).send().await.unwrap();
    let rule_arn = format!("arn:aws:events:us-east-1:123456789012:rule/{}", RULES[1]);
    let mut last = Value::Null;
    for round in 0..4 {
        template["id"] = Value::from(format!("ct-gone-{round}"));
        let out = run(bin(), &emulator, &["handle", "--event", "-"], Some(&template.to_string()));
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        last = outcomes(&out).remove(0);
        if round < 3 {
            assert_eq!(last["resolution"], "failed", "round {round}: {last}");
            assert_eq!(last["actions"][0]["error_kind"], "not-found", "round {round}: {last}");
        }
    }
    assert_eq!(last["resolution"], "refused", "{last}");
    assert!(last["actions"][0]["detail"].as_str().unwrap().contains("circuit open"), "{last}");
    let summaries = p.summaries().await;
    assert_eq!(summaries.len(), 4, "one summary per incident: {summaries:?}");
    let escalated = summaries.iter().filter(|s| s["Message"].as_str().unwrap().contains("circuit opened")).count();
    assert_eq!(escalated, 1, "the opening of the circuit is escalated once");

    let reset = run(bin(), &emulator, &["reset", &rule_arn], None);
    assert!(String::from_utf8_lossy(&reset.stdout).contains("closed"), "{}", String::from_utf8_lossy(&reset.stdout));
    template["id"] = Value::from("ct-gone-after-reset");
    let out = run(bin(), &emulator, &["handle", "--event", "-"], Some(&template.to_string()));
    assert_eq!(outcomes(&out)[0]["resolution"], "failed", "after reset it tries again");
}

#[tokio::test(flavor = "multi_thread")]
async fn sweep_finds_failures_whose_events_were_never_delivered_and_acts_once() {
    let (emulator, p) = setup().await;
    p.set_apollo_quota("throttled").await;
    p.run_execution("lost-event-throttled", "apollo-delta").await;
    p.set_apollo_quota("ok").await;
    p.run_execution("lost-event-auth", "firecrawl").await;
    p.run_execution("fine", "apollo-delta").await;
    let sm = p.state_machine_arn.clone();
    let sweep = || run(bin(), &emulator, &["sweep", "--state-machine", &sm, "--since", "1h"], None);
    let first = sweep();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let mut resolutions: Vec<String> =
        outcomes(&first).iter().map(|o| o["resolution"].as_str().unwrap().to_string()).collect();
    resolutions.sort();
    assert_eq!(resolutions, ["notified", "remediated"], "{}", String::from_utf8_lossy(&first.stdout));
    let second = sweep();
    let again: Vec<String> = outcomes(&second).iter().map(|o| o["resolution"].as_str().unwrap().to_string()).collect();
    assert!(again.iter().all(|r| r == "duplicate"), "{again:?}");
    assert_eq!(p.execution_names().await.len(), 4, "three runs and one restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_puts_back_the_before_image_and_history_shows_the_incidents() {
    let (emulator, p) = setup().await;
    let arn = p.run_execution("undo-me", "apollo-full").await;
    let raised = &handle(&emulator, &[p.status_event(&arn, false).await])[0];
    assert_eq!(p.function_settings().await.0, 450);
    let rule_event = p.disable_rule(RULES[0]).await;
    let enabled = &handle(&emulator, &[rule_event])[0];
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED");

    let out = run(bin(), &emulator, &["undo", raised["incident"].as_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("set the timeout back to 300s"));
    assert_eq!(p.function_settings().await.0, 300);
    let out = run(bin(), &emulator, &["undo", enabled["incident"].as_str().unwrap()], None);
    assert!(out.status.success());
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED");
    assert!(p.incident_item(enabled["incident"].as_str().unwrap()).await.unwrap().get("undone_at").is_some());

    let history = run(bin(), &emulator, &["history", "--since", "1h"], None);
    let text = String::from_utf8_lossy(&history.stdout);
    assert!(text.contains("raise-timeout-then-redrive") && text.contains("reenable-pipeline-rules"), "{text}");
    assert!(text.contains("2 incident(s)"), "{text}");
    let only =
        run(bin(), &emulator, &["history", "--since", "1h", "--policy", "reenable-pipeline-rules", "--json"], None);
    assert_eq!(outcomes(&only).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_delay_becomes_a_durable_timer_whose_due_work_retries_once() {
    let (emulator, p) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(harness::workspace().join("policies/thera-pipeline.yaml")).unwrap();
    std::fs::write(dir.path().join("p.yaml"), shipped.replace("redrive: {delay: 10s}", "redrive: {delay: 5m}"))
        .unwrap();
    let policies = dir.path().to_str().unwrap().to_string();
    let timer_env = [
        ("REMEDIATOR_POLICIES", policies.as_str()),
        ("REMEDIATOR_SELF_ARN", "arn:aws:lambda:us-east-1:123456789012:function:remediator"),
        ("REMEDIATOR_SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/remediator-scheduler"),
    ];
    p.set_apollo_quota("throttled").await;
    let without = p.run_execution("later-without-timer", "apollo-delta").await;
    let with = p.run_execution("later-with-timer", "apollo-delta").await;
    p.set_apollo_quota("ok").await;

    // Without a timer configured, a 5-minute wait is refused rather than held in Lambda.
    let event = p.status_event(&without, false).await;
    let out = run_with(bin(), &emulator, &["handle", "--event", "-"], Some(&event.to_string()), &timer_env[..1]);
    let refused = &outcomes(&out)[0];
    assert_eq!(refused["resolution"], "refused", "{refused}");
    assert!(refused["actions"][0]["detail"].as_str().unwrap().contains("needs a durable timer"), "{refused}");

    // With one, the retry is scheduled and nothing runs yet.
    let event = p.status_event(&with, false).await;
    let scheduler = aws_sdk_scheduler::Client::new(&p.sdk);
    let out = run_with(bin(), &emulator, &["handle", "--event", "-"], Some(&event.to_string()), &timer_env);
    let scheduled = &outcomes(&out)[0];
    let detail = scheduled["actions"][0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("retry scheduled for"), "{scheduled}");
    assert_eq!(p.execution_names().await.len(), 2, "nothing runs before the timer");
    let name = detail.rsplit("schedule ").next().unwrap().trim_end_matches(')');
    let schedule = scheduler.get_schedule().name(name).send().await.expect("the schedule exists");
    assert!(schedule.schedule_expression().unwrap().starts_with("at("));

    // The emulator's timers never fire: run the due work directly, as the schedule would.
    let due: Value = serde_json::from_str(schedule.target().unwrap().input().unwrap()).unwrap();
    let out = run_with(bin(), &emulator, &["handle", "--event", "-"], Some(&due.to_string()), &timer_env);
    let retried = &outcomes(&out)[0];
    assert_eq!(retried["resolution"], "remediated", "{retried}");
    assert!(retried["actions"][0]["detail"].as_str().unwrap().starts_with("restarted as"));
    let again = run_with(bin(), &emulator, &["handle", "--event", "-"], Some(&due.to_string()), &timer_env);
    assert_eq!(outcomes(&again)[0]["resolution"], "duplicate", "a timer that fires twice retries once");
    assert_eq!(p.execution_names().await.len(), 3, "two failures, one retry");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_storm_later_summaries_fold_into_one_digest() {
    let (emulator, p) = setup().await;
    // Three throttled runs (each would be retried: info; in dry run, which waits for no
    // backoff) and two auth failures (critical).
    let mut events = Vec::new();
    p.set_apollo_quota("throttled").await;
    for i in 0..3 {
        let arn = p.run_execution(&format!("storm-throttled-{i}"), "apollo-delta").await;
        events.push(p.status_event(&arn, false).await);
    }
    p.set_apollo_quota("ok").await;
    for i in 0..2 {
        let arn = p.run_execution(&format!("storm-auth-{i}"), "firecrawl").await;
        events.push(p.status_event(&arn, false).await);
    }
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    // A window long enough for the five handlings on a loaded machine.
    let window = [("REMEDIATOR_DIGEST_WINDOW", "15s"), ("REMEDIATOR_DRY_RUN", "true")];
    let started = std::time::Instant::now();
    let out = run_with(bin(), &emulator, &["handle", "--event", "-"], Some(&text), &window);
    let all = outcomes(&out);
    let folded: Vec<&Value> = all.iter().filter(|o| o["summary"]["folded"] == true).collect();
    assert_eq!(folded.len(), 2, "{all:#?}");
    assert!(folded.iter().all(|o| o["resolution"] == "would-remediate"), "only like outcomes fold: {folded:#?}");
    let first = p.summaries().await;
    assert_eq!(first.len(), 3, "the first retry and every critical auth failure go out at once: {first:#?}");
    let critical = first.iter().filter(|s| s["MessageAttributes"]["severity"]["Value"] == "critical").count();
    assert_eq!(critical, 2, "critical summaries are never delayed");

    tokio::time::sleep(Duration::from_millis(16_000).saturating_sub(started.elapsed())).await;
    let out = run_with(bin(), &emulator, &["digests"], None, &window);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 digest(s) sent"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let digest = p.summaries().await;
    assert_eq!(digest.len(), 1);
    assert_eq!(
        digest[0]["Subject"],
        "[digest, dry run] thera-pipeline-prod-daily: 2 more would-remediate under redrive-transient-errors"
    );
    assert_eq!(digest[0]["MessageAttributes"]["severity"]["Value"], "info");
    assert!(digest[0]["Message"].as_str().unwrap().contains("storm-throttled-"));
    let again = run_with(bin(), &emulator, &["digests"], None, &window);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 digest(s) sent"), "a digest goes out once");
}

// Issue 10, item 10: an undo is guarded, refuses when someone changed the target since,
// is idempotent, records itself, and its own reversal is not remediated again.
#[tokio::test(flavor = "multi_thread")]
async fn an_undo_sticks_and_its_reversal_is_not_remediated_again() {
    let (emulator, p) = setup().await;
    let rule_event = p.disable_rule(RULES[0]).await;
    let enabled = handle(&emulator, std::slice::from_ref(&rule_event)).remove(0);
    assert_eq!(enabled["resolution"], "remediated", "{enabled}");
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED");
    let _ = p.summaries().await;

    let incident = enabled["incident"].as_str().unwrap();
    let out = run(bin(), &emulator, &["undo", incident], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("undone: disable rule"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED");
    let item = p.incident_item(incident).await.unwrap();
    assert!(item["undo_results"].as_str().unwrap().contains("\"result\":\"done\""), "the undo is recorded: {item}");

    // The DisableRule the undo made comes back as a CloudTrail event: not re-done.
    let mut reversal = rule_event.clone();
    reversal["id"] = Value::from("ct-undo-reversal");
    let again = handle(&emulator, &[reversal]).remove(0);
    assert_eq!(again["resolution"], "refused", "{again}");
    assert!(again["actions"][0]["detail"].as_str().unwrap().contains("undo of incident"), "{again}");
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED", "the undo sticks");

    // Undoing twice changes nothing: an undo runs once.
    let twice = run(bin(), &emulator, &["undo", incident], None);
    assert!(twice.status.success());
    assert!(
        String::from_utf8_lossy(&twice.stdout).contains("was undone already"),
        "{}",
        String::from_utf8_lossy(&twice.stdout)
    );

    // A restore whose object was written again since is not undone.
    let key = "thera-pipeline/apollo/latest.json";
    let restored = handle(&emulator, &[p.delete_object(key).await]).remove(0);
    assert_eq!(restored["resolution"], "remediated", "{restored}");
    p.s3()
        .put_object()
        .bucket(harness::BUCKET)
        .key(key)
        .body(b"{\"contacts\": 1300}".to_vec().into())
        .send()
        .await
        .unwrap();
    let out = run(bin(), &emulator, &["undo", restored["incident"].as_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "a refused undo is reported");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("refused:") && stdout.contains("written after remediator restored"), "{stdout}");
    assert_eq!(p.object_body(key).await.as_deref(), Some("{\"contacts\": 1300}"), "the newer version stays");
}

// Issue 11, row 7 from the failure itself: a run that failed because its input was
// deleted is healed: the object restored (and checked), the step run again, and the
// retried run's success closes the incident as healed.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_failed_on_a_deleted_input_is_healed_by_restoring_it_and_running_again() {
    let (emulator, p) = setup().await;
    let key = "thera-pipeline/apollo/latest.json";
    let original = p.object_body(key).await.expect("the export exists");
    p.delete_object(key).await;
    let arn = p.run_execution("transform-2026-11-29", "transform").await;
    assert_eq!(p.wait(&arn).await, "FAILED");
    let event = p.status_event(&arn, false).await;

    let out = run(bin(), &emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let outcome = &outcomes(&out)[0];
    assert_eq!(outcome["policy"], "restore-missing-input-then-redrive", "{outcome}");
    assert_eq!(outcome["diagnosis"]["state"], "ReadApolloExport", "{outcome}");
    assert_eq!(outcome["diagnosis"]["object"], format!("arn:aws:s3:::{}/{key}", harness::BUCKET), "{outcome}");
    assert_eq!(outcome["resolution"], "remediated", "{outcome}");
    let actions = outcome["actions"].as_array().unwrap();
    assert_eq!((actions[0]["action"].as_str(), actions[0]["result"].as_str()), (Some("restore-object"), Some("done")));
    assert!(actions[0]["detail"].as_str().unwrap().contains("is current"), "checked after the restore: {outcome}");
    assert_eq!((actions[1]["action"].as_str(), actions[1]["result"].as_str()), (Some("redrive"), Some("done")));
    assert_eq!(p.object_body(key).await.as_deref(), Some(original.as_str()), "the newest earlier version is back");

    // The step ran again (the emulator has no RedriveExecution: a restart under a
    // deterministic name) and read the restored object.
    let names = p.execution_names().await;
    let retried = names.iter().find(|n| n.contains("-rmd1-")).expect("a retried run");
    let retried_arn = harness::execution_arn(retried);
    assert_eq!(p.wait(&retried_arn).await, "SUCCEEDED");
    let success = p.status_event(&retried_arn, false).await;
    let verified = run(bin(), &emulator, &["handle", "--event", "-"], Some(&success.to_string()));
    let verdict = &outcomes(&verified)[0];
    assert_eq!(verdict["resolution"], "healed", "{verdict}");
    let incident = outcome["incident"].as_str().unwrap();
    assert_eq!(p.incident_item(incident).await.unwrap()["verification"], "healed");
    let subjects: Vec<String> =
        p.summaries().await.iter().map(|s| s["Subject"].as_str().unwrap_or_default().to_string()).collect();
    assert!(subjects.iter().any(|s| s.starts_with("[healed] thera-pipeline-prod-daily")), "{subjects:?}");

    // The report counts the incident (not the retry's own success) and its time to heal.
    let report = run(bin(), &emulator, &["report", "--since", "1d", "--format", "json"], None);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&report.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(
        (line["policy"].as_str(), line["error"].as_str()),
        (Some("restore-missing-input-then-redrive"), Some("s3.NoSuchKeyException"))
    );
    assert_eq!(
        (line["incidents"].as_u64(), line["remediated"].as_u64(), line["healed"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert!(line["median_seconds_to_heal"].as_i64().is_some_and(|s| s >= 0), "{line}");
    let table = run(bin(), &emulator, &["report", "--since", "1d"], None);
    let text = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(text.starts_with("POLICY") && text.contains("restore-missing-input-then-redrive"), "{text}");
    // The pull-request workflow's view: the touched policies only, as Markdown, read with
    // nothing but the table's name (no topic configured).
    let md = |policy: &str| {
        let args = ["report", "--since", "1d", "--format", "markdown", "--policy", policy];
        let out = run_with(bin(), &emulator, &args, None, &[("REMEDIATOR_TOPIC_ARN", "")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let touched = md("restore-missing-input-then-redrive");
    assert!(touched.starts_with("| POLICY") && touched.contains("| restore-missing-input-then-redrive |"), "{touched}");
    assert_eq!(md("redrive-transient-errors").trim(), "No incidents in the last 1d for redrive-transient-errors.");
}

// Issue 11, the guide's "Stop Pipeline": one command pauses remediator for the
// pipeline, disables its rules and stops its running executions, in that order; the
// rule it disabled is not re-enabled by remediator (the pause wins); `--lift` enables
// again exactly the rules it disabled and ends the pause.
#[tokio::test(flavor = "multi_thread")]
async fn an_emergency_stop_stops_the_pipeline_and_its_lift_puts_the_rules_back() {
    let (emulator, p) = setup().await;
    // The weekly rule was disabled before the stop: the lift must leave it so.
    p.events().disable_rule().name(RULES[1]).send().await.unwrap();
    let running = p.start_execution("backfill-2026-11", "backfill").await;
    let stop = ["emergency-stop", "--pipeline", "thera-pipeline-", "--reason", "bad Apollo data", "--for", "2h"];

    let dry = run(bin(), &emulator, &[&stop[..], &["--dry-run"]].concat(), None);
    let text = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{text}{}", String::from_utf8_lossy(&dry.stderr));
    assert!(text.contains(&format!("would disable rule {}", RULES[0])), "{text}");
    assert!(text.contains(&format!("rule {} is disabled already", RULES[1])), "{text}");
    assert!(text.contains(&format!("would stop execution {running}")), "{text}");
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED", "a dry run changes nothing");

    let out = run(bin(), &emulator, &stop, None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED");
    assert_eq!(p.wait(&running).await, "ABORTED");
    let pauses = run(bin(), &emulator, &["pauses"], None);
    assert!(String::from_utf8_lossy(&pauses.stdout).contains("pipeline thera-pipeline-*"), "{pauses:?}");
    // The stop's own DisableRule, as CloudTrail delivers it: remediator does not fight it.
    let disabled = p.disable_rule(RULES[0]).await;
    let handled = run(bin(), &emulator, &["handle", "--event", "-"], Some(&disabled.to_string()));
    let outcome = &outcomes(&handled)[0];
    assert_eq!(outcome["resolution"], "refused", "{outcome}");
    assert_eq!(p.rule_state(RULES[0]).await, "DISABLED");
    let subjects: Vec<String> =
        p.summaries().await.iter().map(|s| s["Subject"].as_str().unwrap_or_default().to_string()).collect();
    assert!(
        subjects.iter().any(|s| s == "[emergency stop] thera-pipeline-*: 1 rule(s) disabled, 1 execution(s) stopped"),
        "{subjects:?}"
    );

    let lift = run(bin(), &emulator, &["emergency-stop", "--pipeline", "thera-pipeline-", "--lift"], None);
    let text = String::from_utf8_lossy(&lift.stdout).to_string();
    assert!(lift.status.success(), "{text}{}", String::from_utf8_lossy(&lift.stderr));
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED", "put back as it was");
    assert_eq!(p.rule_state(RULES[1]).await, "DISABLED", "disabled before the stop: left so");
    let pauses = run(bin(), &emulator, &["pauses"], None);
    assert!(String::from_utf8_lossy(&pauses.stdout).contains("no pause in force"), "{pauses:?}");
    let again = run(bin(), &emulator, &["emergency-stop", "--pipeline", "thera-pipeline-", "--lift"], None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to lift"), "lifted once");

    // A stop that died right after disabling a rule, before recording it as disabled:
    // its before-image (saved ahead of the change) is enough for the lift.
    use remediator::emergency::{StopRecord, StopRecords};
    let table = remediator::aws::dynamodb::StateTable::new(
        aws_sdk_dynamodb::Client::new(&emulator.sdk()),
        harness::STATE_TABLE,
    );
    let (pk, sk) = StopRecord::key("thera-pipeline-");
    let now = remediator::clock::now();
    let died = StopRecord {
        pk,
        sk,
        prefix: "thera-pipeline-".into(),
        reason: "died".into(),
        at: now,
        until: now + 3600,
        planned_rules: vec![RULES[0].to_string()],
        ..StopRecord::default()
    };
    table.save(&died).await.unwrap();
    p.events().disable_rule().name(RULES[0]).send().await.unwrap();
    let lift = run(bin(), &emulator, &["emergency-stop", "--pipeline", "thera-pipeline-", "--lift"], None);
    assert!(lift.status.success(), "{}", String::from_utf8_lossy(&lift.stdout));
    assert_eq!(p.rule_state(RULES[0]).await, "ENABLED", "lifted from the before-image");
    let bad = run(bin(), &emulator, &["emergency-stop", "--pipeline", "thera", "--reason", "x", "--for", "1h"], None);
    assert_eq!(bad.status.code(), Some(2), "a prefix without a separator would cover other pipelines");
}
