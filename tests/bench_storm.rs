//! `make bench-storm`: a storm of failures against the emulator, through a counting
//! proxy, handled by 8 concurrent handlers in one process (as 8 concurrent Lambda
//! invocations would), with duplicates. Prints throughput, AWS calls per event by API,
//! actions applied against the expected number, duplicates absorbed, latency
//! percentiles, peak RSS, and CPU time next to the emulator's.
//!
//! STORM_EVENTS (default 10000) sets the number of events.

mod harness;

use std::sync::Arc;
use std::time::Instant;

use harness::fault_proxy::FaultProxy;
use harness::{Emulator, Pipeline};
use remediator::aws::{dynamodb::StateTable, sns::SummaryTopic};
use remediator::config::PolicySource;
use remediator::guard::AllowList;
use remediator::handle::{Handler, Invocation, Resolution};
use serde_json::Value;
use tokio::sync::Mutex;

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let total: usize = std::env::var("STORM_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|p| p.parent()).unwrap().join("remediator");
    let emulator = Emulator::start();
    let pipeline = Pipeline::create(&emulator, &bin).await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;

    // The failures: distinct incidents are 80% of the events, duplicates the rest.
    let unique = total * 8 / 10;
    let throttled = (unique / 40).max(1);
    let auth = (unique / 10).max(1);
    let alarms = unique - throttled - auth;
    eprintln!("preparing {throttled} throttled and {auth} auth failures in the emulator, {alarms} alarms...");
    let mut events = Vec::with_capacity(total);
    pipeline.set_apollo_quota("throttled").await;
    for i in 0..throttled {
        let arn = pipeline.run_execution(&format!("storm-throttled-{i}"), "apollo-delta").await;
        events.push(pipeline.status_event(&arn, false).await);
    }
    pipeline.set_apollo_quota("ok").await;
    for i in 0..auth {
        let arn = pipeline.run_execution(&format!("storm-auth-{i}"), "firecrawl").await;
        events.push(pipeline.status_event(&arn, false).await);
    }
    for i in 0..alarms {
        let mut alarm = pipeline.errors_alarm_event("ALARM", "OK");
        alarm["id"] = Value::from(format!("storm-alarm-{i}"));
        events.push(alarm);
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in unique..total {
        let i = (next() % unique as u64) as usize;
        events.push(events[i].clone());
    }
    // Shuffle so duplicates and kinds interleave.
    for i in (1..events.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        events.swap(i, j);
    }

    let sdk = emulator.sdk_via(&proxy.endpoint);
    let handler = Arc::new(Handler {
        policies: PolicySource::Bundled.load().unwrap(),
        dry_run: false,
        allow: AllowList::default_list(),
        clients: Arc::new(remediator::aws::clients(&sdk)),
        accounts: remediator::handle::Accounts { home: Some(harness::ACCOUNT.into()), ..Default::default() },
        locks: Arc::new(StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), harness::STATE_TABLE)),
        timers: None,
        identity: Default::default(),
        digests: None,
        digest_window: std::time::Duration::ZERO,
        guards: Arc::new(StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), harness::STATE_TABLE)),
        log: Arc::new(StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), harness::STATE_TABLE)),
        notifier: Arc::new(SummaryTopic::new(aws_sdk_sns::Client::new(&sdk), harness::topic_arn())),
        links: None,
    });
    proxy.reset_counts();
    let queue = Arc::new(Mutex::new(events));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let (cpu_self0, cpu_emu0) = (harness::cpu_seconds("self"), harness::cpu_seconds(&emulator.pid().to_string()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (queue, results, handler) = (Arc::clone(&queue), Arc::clone(&results), Arc::clone(&handler));
        workers.push(tokio::spawn(async move {
            loop {
                let Some(event) = queue.lock().await.pop() else { break };
                let t = Instant::now();
                let inv = Invocation::for_lease(format!("storm-{w}"), std::time::Duration::from_secs(900));
                let outcome = handler.handle(event.clone(), &inv).await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                results.lock().await.push((
                    outcome.map(|o| (o.resolution, o.actions)).map_err(|e| e.to_string()),
                    ms,
                    event,
                ));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    // EventBridge delivers an event again when handling returned an error: do the same
    // once for those, as the service would.
    let failed_events: Vec<Value> = {
        let mut r = results.lock().await;
        let mut again = Vec::new();
        let mut i = 0;
        while i < r.len() {
            if r[i].0.is_err() {
                let (_, _, event) = r.remove(i);
                again.push(event);
            } else {
                i += 1;
            }
        }
        again
    };
    let redelivered = failed_events.len();
    for event in failed_events {
        let t = Instant::now();
        let inv = Invocation::for_lease("storm-redelivery", std::time::Duration::from_secs(900));
        let outcome = handler.handle(event.clone(), &inv).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        results.lock().await.push((outcome.map(|o| (o.resolution, o.actions)).map_err(|e| e.to_string()), ms, event));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (cpu_self, cpu_emu) =
        (harness::cpu_seconds("self") - cpu_self0, harness::cpu_seconds(&emulator.pid().to_string()) - cpu_emu0);
    let results = results.lock().await;

    let mut latencies: Vec<f64> = results.iter().map(|(_, ms, _)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let absorbed =
        results.iter().filter(|(r, _, _)| matches!(r, Ok((Resolution::Duplicate | Resolution::InProgress, _)))).count();
    let errors: Vec<&String> = results.iter().filter_map(|(r, _, _)| r.as_ref().err()).collect();
    let restarts = results
        .iter()
        .filter_map(|(r, _, _)| r.as_ref().ok())
        .flat_map(|(_, actions)| actions.iter())
        .filter(|a| a.action == "redrive" && a.result == remediator::apply::StepResult::Done)
        .count();
    let names = pipeline.execution_names().await;
    let restarted_in_aws = names.iter().filter(|n| n.contains("-rmd1-")).count();

    println!(
        "storm: {total} events ({unique} distinct incidents, {} duplicates), 8 concurrent handlers, moto server\n",
        total - unique
    );
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| events/s | {:.0} |", total as f64 / elapsed);
    println!("| wall time | {elapsed:.1} s |");
    println!("| restarts applied / expected | {restarts} / {throttled} |");
    println!("| restarts that exist in Step Functions | {restarted_in_aws} |");
    println!("| duplicates absorbed / sent | {absorbed} / {} |", total - unique);
    println!("| events redelivered after a retryable error (as EventBridge would) | {redelivered} |");
    println!("| events not handled after that | {} |", errors.len());
    println!("| latency p50 / p99 | {:.1} ms / {:.1} ms |", pct(0.5), pct(0.99));
    println!("| peak RSS (remediator, with the harness) | {} |", peak_rss());
    println!("| CPU time: remediator / emulator | {cpu_self:.1} s / {cpu_emu:.1} s |");
    let mut calls: Vec<(String, u32)> = proxy.counts().into_iter().collect();
    calls.sort();
    println!("\n| AWS API | calls per event |");
    println!("|---|---:|");
    for (api, n) in calls {
        println!("| {api} | {:.2} |", n as f64 / total as f64);
    }
    if let Some(e) = errors.first() {
        eprintln!("first error: {e}");
    }
    assert_eq!(restarts, throttled, "every throttled failure restarted exactly once");
    assert_eq!(restarted_in_aws, throttled, "and Step Functions holds exactly that many restarts");
}
