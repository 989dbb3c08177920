//! `make demo`: the moto server, a miniature Thera pipeline on it, two real failures,
//! and `remediator handle` healing one and reporting the other.

mod harness;

use std::path::PathBuf;

use harness::{outcomes, run, Emulator, Pipeline};
use serde_json::Value;

fn remediator_bin() -> PathBuf {
    // target/debug/examples/demo -> target/debug/remediator
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().and_then(|p| p.parent()).expect("target dir").join("remediator");
    assert!(bin.exists(), "{} is missing: run `cargo build` first", bin.display());
    bin
}

fn section(title: &str) {
    println!("\n=== {title} {}", "=".repeat(70usize.saturating_sub(title.len())));
}

fn show(label: &str, value: &Value) {
    println!("{label}:\n{}", indent(&serde_json::to_string_pretty(value).unwrap()));
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
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
    println!(
        "  rules {} and {}, versioned bucket {} (thera-pipeline/ data),",
        harness::RULES[0],
        harness::RULES[1],
        harness::BUCKET
    );
    println!(
        "  `remediator bootstrap` (table {}, topic {}), and an SQS queue subscribed to the topic.",
        harness::STATE_TABLE,
        harness::TOPIC
    );
    let pipeline = Pipeline::create(&emulator, &bin).await;

    section("Failure 1: the Apollo pull is throttled (Lambda.TooManyRequestsException)");
    pipeline.set_apollo_quota("throttled").await;
    let throttled = pipeline.run_execution("daily-2026-11-29", "apollo-delta").await;
    println!("execution {throttled}: {}", pipeline.wait(&throttled).await);
    println!("(the throttling clears: the quota table says ok again)");
    pipeline.set_apollo_quota("ok").await;
    let event = pipeline.status_event(&throttled, false).await;
    heal(&bin, &emulator, &pipeline, &event).await;
    let names = pipeline.execution_names().await;
    if let Some(restart) = names.iter().find(|n| n.contains("-rmd")) {
        let arn = harness::execution_arn(restart);
        println!("\nthe restarted execution {restart}: {}", pipeline.wait(&arn).await);
    }

    section("The same event delivered again (EventBridge is at-least-once)");
    let again = run(&bin, &emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    let dup = &outcomes(&again)[0];
    println!("resolution: {}  ({})", dup["resolution"], dup["note"].as_str().unwrap_or_default());
    println!("executions of {} now: {:?}", harness::STATE_MACHINE, pipeline.execution_names().await);
    println!("summaries sent for the duplicate: {}", pipeline.summaries().await.len());

    section("Failure 2: the Firecrawl pull has an invalid API key (HTTP 401)");
    let auth = pipeline.run_execution("firecrawl-2026-11-29", "firecrawl").await;
    println!("execution {auth}: {}", pipeline.wait(&auth).await);
    let event = pipeline.status_event(&auth, true).await;
    heal(&bin, &emulator, &pipeline, &event).await;
    println!("\nexecutions of {} now: {:?}", harness::STATE_MACHINE, pipeline.execution_names().await);
    println!("\nDone. The emulator stops with this process.");
}

async fn heal(bin: &std::path::Path, emulator: &Emulator, pipeline: &Pipeline, event: &Value) {
    println!("\n$ remediator handle --event -   # the EventBridge status-change event");
    let out = run(bin, emulator, &["handle", "--event", "-"], Some(&event.to_string()));
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        std::process::exit(1);
    }
    let outcome = &outcomes(&out)[0];
    show("diagnosis", &outcome["diagnosis"]);
    println!("policy: {}", outcome["policy"]);
    for a in outcome["actions"].as_array().into_iter().flatten() {
        println!("action: {} -> {}: {}", a["action"], a["result"], a["detail"].as_str().unwrap_or_default());
    }
    println!("resolution: {}", outcome["resolution"]);
    for s in pipeline.summaries().await {
        println!("\nsummary received by the SQS subscriber:");
        println!("    Subject: {}", s["Subject"].as_str().unwrap_or_default());
        println!("{}", indent(s["Message"].as_str().unwrap_or_default()));
    }
    if let Some(key) = outcome["incident"].as_str() {
        if let Some(mut item) = pipeline.incident_item(key).await {
            // The full outcome and summary are stored too; shorten them for the screen.
            for long in ["outcome", "summary_body"] {
                if let Some(v) = item.get_mut(long) {
                    *v = Value::String(format!("<{} characters>", v.as_str().map_or(0, str::len)));
                }
            }
            show("\nitem in the state table", &item);
        }
    }
}
