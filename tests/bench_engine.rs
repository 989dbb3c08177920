//! `make bench`: throughput of the policy engine behind `explain` (JSON parsing, event
//! reading, matching every policy, planning) on realistic ~1 KB failure events, with the
//! shipped policy set and with 1,000 generated policies of mixed operators. One core.

use std::time::Instant;

use remediator::config::PolicySource;
use remediator::explain::explain;
use remediator::guard::AllowList;
use remediator::policy::PolicySet;
use serde_json::{json, Value};

fn event(i: usize) -> String {
    let machine = ["thera-pipeline-prod-daily", "thera-pipeline-prod-weekly", "billing-export"][i % 3];
    let (status, error, cause) = match i % 10 {
        0..=3 => (
            "FAILED",
            "Lambda.TooManyRequestsException",
            "Rate Exceeded. (Service: Lambda, Status Code: 429, Request ID: 2f5b0a1e-0d4b-4a6f-9f0e-3c1d2b3a4e5f)",
        ),
        4 | 5 => {
            ("FAILED", "HTTPError", "401 Unauthorized: Invalid API key for api.apollo.io; check /thera/apollo/api_key")
        }
        6 => ("TIMED_OUT", "States.Timeout", "Task timed out after 300.00 seconds"),
        7 => (
            "FAILED",
            "Athena.InvalidRequestException",
            "SYNTAX_ERROR: line 1:8: Column 'contact_id' cannot be resolved",
        ),
        8 => (
            "FAILED",
            "States.Runtime",
            "An error occurred while executing the state 'Merge'. The JSONPath '$.contacts' could not be found",
        ),
        _ => ("SUCCEEDED", "", ""),
    };
    let name = format!("run-{i:08}");
    json!({
        "version": "0",
        "id": format!("6f87d04b-9f74-4f04-a780-{i:012}"),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-11-29T09:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:states:us-east-1:123456789012:execution:{machine}:{name}")],
        "detail": {
            "executionArn": format!("arn:aws:states:us-east-1:123456789012:execution:{machine}:{name}"),
            "stateMachineArn": format!("arn:aws:states:us-east-1:123456789012:stateMachine:{machine}"),
            "name": name,
            "status": status,
            "startDate": 1795967217000u64,
            "stopDate": 1795967227000u64,
            "input": "{\"job\":\"apollo-delta\",\"since\":\"2026-11-28\",\"page_size\":500,\"fields\":[\"id\",\"email\",\"company\",\"title\"],\"tenant\":\"thera\"}",
            "inputDetails": {"included": true},
            "output": null,
            "outputDetails": null,
            "error": if error.is_empty() { Value::Null } else { json!(error) },
            "cause": if cause.is_empty() { Value::Null } else { json!(cause) },
            "redriveCount": i % 4,
            "redriveStatus": "REDRIVABLE"
        }
    })
    .to_string()
}

/// 1,000 policies mixing every operator; most do not match, as in a real large set.
fn generated_policies() -> PolicySet {
    let mut text = String::from("policies:\n");
    for i in 0..1000 {
        let pattern = match i % 8 {
            0 => format!("{{source: [aws.states], detail: {{stateMachineArn: [{{prefix: 'arn:aws:states:us-east-1:123456789012:stateMachine:team-{i}-'}}]}}}}"),
            1 => format!("{{source: [aws.states], detail: {{name: [{{suffix: '-job-{i}'}}]}}}}"),
            2 => format!("{{detail: {{stateMachineArn: [{{wildcard: 'arn:aws:states:*:*:stateMachine:svc-{i}-*'}}]}}}}"),
            3 => format!("{{detail: {{redriveCount: [{{numeric: ['>', {}, '<=', {}]}}], status: [FAILED]}}, diagnosis: {{error: [Err{i}]}}}}", 100 + i, 200 + i),
            4 => format!("{{source: [{{anything-but: [aws.states, aws.s3]}}], detail-type: [Custom {i}]}}"),
            5 => format!("{{detail: {{status: [{{equals-ignore-case: 'failed'}}], error: [{{prefix: {{equals-ignore-case: 'custom{i}.'}}}}]}}}}"),
            6 => format!("{{detail: {{sourceIp: [{{cidr: '10.{}.0.0/16'}}]}}}}", i % 250),
            _ => format!("{{detail: {{marker{i}: [{{exists: true}}]}}, $or: [{{source: [a{i}]}}, {{account: ['{i}']}}]}}"),
        };
        text.push_str(&format!("  - {{name: generated-{i}, match: {pattern}, actions: [notify]}}\n"));
    }
    text.push_str("  - {name: catch-all-failures, priority: 5000, match: {source: [aws.states], detail: {status: [FAILED, TIMED_OUT]}}, actions: [redrive]}\n");
    PolicySet::from_sources(&[("generated.yaml".into(), text)]).unwrap_or_else(|e| panic!("{e}"))
}

fn run(set: &PolicySet, lines: &[String], rounds: usize) -> (f64, usize) {
    let allow = AllowList::default_list();
    let start = Instant::now();
    let mut decided = 0;
    for _ in 0..rounds {
        for line in lines {
            let doc: Value = serde_json::from_str(line).expect("json");
            if explain(set, &allow, doc, None, false).expect("event").policy.is_some() {
                decided += 1;
            }
        }
    }
    (start.elapsed().as_secs_f64(), decided)
}

/// Cold start: the release binary from process start to its first decision
/// (`explain` of one failure with the bundled policies), its peak RSS, and the size of
/// the Lambda zip if `make package` built it.
fn cold_start() {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().and_then(|p| p.parent()).expect("target dir").join("remediator");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let event = root.join("policies/cases/fixtures/thera-daily-failed-2022.json");
    let history = root.join("policies/cases/fixtures/lambda-invoke-throttled.json");
    let mut times = Vec::new();
    let mut rss = String::new();
    for _ in 0..50 {
        let start = Instant::now();
        let out = std::process::Command::new(&bin)
            .args(["explain", "--event"])
            .arg(&event)
            .arg("--history")
            .arg(&history)
            .env("REMEDIATOR_REPORT_PEAK_RSS", "1")
            .output()
            .expect("run remediator");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(String::from_utf8_lossy(&out.stdout).contains("redrive-transient-errors"));
        rss = String::from_utf8_lossy(&out.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("peak-rss "))
            .unwrap_or("?")
            .to_string();
    }
    times.sort_by(f64::total_cmp);
    let zip = root.join("target/lambda/remediator/bootstrap.zip");
    let zip_size = std::fs::metadata(&zip)
        .map(|m| format!("{:.1} MB", m.len() as f64 / 1e6))
        .unwrap_or_else(|_| "(run make package)".into());
    println!("\ncold start: release binary, process start to first decision (explain, bundled policies), 50 runs\n");
    println!("| p50 | p90 | max | peak RSS | Lambda zip |");
    println!("|---:|---:|---:|---:|---:|");
    println!("| {:.1} ms | {:.1} ms | {:.1} ms | {rss} | {zip_size} |", times[25], times[45], times[49]);
}

fn main() {
    let lines: Vec<String> = (0..10_000).map(event).collect();
    let size = lines.iter().map(String::len).sum::<usize>() / lines.len();
    let shipped = PolicySource::Bundled.load().expect("bundled policies");
    let generated = generated_policies();
    println!("policy engine: parse + read + match every policy + plan, one core, events of {size} bytes on average\n");
    println!("| policy set | policies | events | seconds | events/s | µs/event | decided |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // Where the time goes, on the shipped set: JSON parsing alone, then parsing and
    // matching every policy against the raw event.
    for (name, stage) in [("JSON parse only", 0), ("parse + match (no plan)", 1)] {
        let start = Instant::now();
        let mut hits = 0usize;
        for _ in 0..20 {
            for line in &lines {
                let doc: Value = serde_json::from_str(line).expect("json");
                if stage == 1 {
                    hits += shipped.policies().iter().filter(|p| p.pattern.matches(&doc)).count();
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let n = lines.len() * 20;
        println!(
            "| {name} | {} | {n} | {secs:.2} | {:.0} | {:.2} | {hits} |",
            shipped.policies().len(),
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
    for (name, set, rounds) in [("shipped", &shipped, 20), ("generated", &generated, 1)] {
        let _ = run(set, &lines[..1000], 1); // warm up
        let (secs, decided) = run(set, &lines, rounds);
        let n = lines.len() * rounds;
        println!(
            "| {name} | {} | {n} | {secs:.2} | {:.0} | {:.2} | {decided} |",
            set.policies().len(),
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
    cold_start();
}
