//! `make bench-report`: `remediator report` over a generated year of a busy pipeline, on
//! the emulator. Report rows live in one partition per month (`REPORT#YYYY-MM`), so a
//! year is twelve or thirteen queries, whatever else the table holds; this writes
//! REPORT_PER_DAY rows for each of 365 days (default 100: 36,500 rows), then times the
//! report (the process, start to end) and prints a table.

mod harness;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use harness::{run, Emulator};
use remediator::outcome::Resolution;
use remediator::record::{report_month, ReportRow, Verdict};

fn remediator_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().and_then(|p| p.parent()).expect("target dir").join("remediator");
    assert!(bin.exists(), "{} is missing: run `cargo build` first", bin.display());
    bin
}

/// A deterministic row: five policies, six errors, mostly remediated and healed.
fn row(day: i64, i: usize, now: i64) -> ReportRow {
    let policies = [
        "redrive-transient-errors",
        "raise-timeout-then-redrive",
        "never-retry-auth-errors",
        "restore-missing-input-then-redrive",
        "reenable-pipeline-rules",
    ];
    let errors = [
        "Lambda.TooManyRequestsException",
        "Sandbox.Timedout",
        "HTTPError",
        "s3.NoSuchKeyException",
        "Athena.ThrottlingException",
        "States.TaskFailed",
    ];
    let failed_at = now - day * 86400 - (i as i64 * 611) % 86400;
    let resolution = match i % 10 {
        0 => Resolution::Notified,
        1 => Resolution::Refused,
        _ => Resolution::Remediated,
    };
    let healed = resolution == Resolution::Remediated && i % 7 != 0;
    ReportRow {
        incident: format!("arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-prod-daily:d{day}-{i}#0"),
        account: Some(format!("{:012}", 100_000_000_000u64 + (i % 100) as u64)),
        policy: Some(policies[i % policies.len()].to_string()),
        error: Some(errors[(i / 3) % errors.len()].to_string()),
        resolution: Some(resolution),
        refusals: if resolution == Resolution::Refused { vec!["attempts-exhausted".into()] } else { Vec::new() },
        failed_at,
        completed_at: failed_at + 5,
        verdict: (resolution == Resolution::Remediated).then_some(if healed {
            Verdict::Healed
        } else {
            Verdict::StillFailing
        }),
        verified_at: healed.then_some(failed_at + 60 + (i as i64 * 37) % 3600),
    }
}

#[tokio::main]
async fn main() {
    let per_day: usize = std::env::var("REPORT_PER_DAY").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let bin = remediator_bin();
    let emulator = Emulator::start();
    let out = run(&bin, &emulator, &["bootstrap"], None);
    assert!(out.status.success(), "bootstrap: {}", String::from_utf8_lossy(&out.stderr));
    let ddb = aws_sdk_dynamodb::Client::new(&emulator.sdk());
    let now = remediator::clock::now();
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut written = 0;
    let mut months = std::collections::BTreeSet::new();
    for day in 0..365 {
        for i in 0..per_day {
            let row = row(day, i, now);
            let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&row).unwrap();
            months.insert(report_month(row.completed_at));
            item.insert("pk".into(), AttributeValue::S(report_month(row.completed_at)));
            item.insert("sk".into(), AttributeValue::S(row.incident.clone()));
            batch.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build(),
            );
            if batch.len() == 25 {
                ddb.batch_write_item()
                    .request_items(harness::STATE_TABLE, std::mem::take(&mut batch))
                    .send()
                    .await
                    .unwrap();
            }
            written += 1;
        }
    }
    if !batch.is_empty() {
        ddb.batch_write_item().request_items(harness::STATE_TABLE, batch).send().await.unwrap();
    }
    let write_seconds = started.elapsed().as_secs_f64();
    let emulator_cpu = || harness::cpu_seconds(&emulator.pid().to_string());
    let (started, cpu_before) = (Instant::now(), emulator_cpu());
    let out = run(&bin, &emulator, &["report", "--since", "366d", "--format", "json"], None);
    let report_seconds = started.elapsed().as_secs_f64();
    let report_emulator_cpu = emulator_cpu() - cpu_before;
    assert!(out.status.success(), "report: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let counted: u64 = lines.iter().filter_map(|l| l["incidents"].as_u64()).sum();
    assert_eq!(counted, written as u64, "every row counted once");
    println!("| rows (a year, {per_day}/day) | month partitions queried | write (BatchWriteItem) | `remediator report --since 366d` | of which the emulator's CPU | report lines |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {written} | {} | {write_seconds:.1} s | {report_seconds:.2} s | {report_emulator_cpu:.1} s | {} |",
        months.len(),
        lines.len()
    );
}
