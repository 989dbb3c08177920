//! The `remediator` binary: inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) it runs the
//! runtime loop; anywhere else it is the command line.
//!
//! Exit codes: 0 success, 1 a command's check failed (invalid policies, failing cases,
//! an event not handled), 2 usage or configuration errors.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use remediator::apply::StepResult;
use remediator::aws::{
    accounts::MemberRoles, dynamodb::StateTable, scheduler::Scheduler, sdk_config, sns::SummaryTopic,
};
use remediator::config::{Config, PolicySource};
use remediator::guard::{format_time, GuardStore, Pause, PauseScope};
use remediator::handle::{HandleError, Handler, Invocation};
use remediator::offline;
use remediator::policy::{PolicyErrors, PolicySet};
use remediator::record::ClaimStatus;

#[derive(Parser)]
#[command(name = "remediator", version, about = "Self-healing for AWS data pipelines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Handle events exactly as the Lambda would, against the configured AWS.
    Handle {
        /// A file with one JSON event or NDJSON of many; `-` for standard input.
        #[arg(long)]
        event: String,
    },
    /// Create the state table and the summary topic if missing (emulator, first trials).
    Bootstrap,
    /// Check policies; print every error with file:line:column.
    Validate {
        /// Policy directory or file (default: the bundled policies).
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Show what remediator would decide for events, without touching AWS.
    Explain {
        #[arg(long)]
        policies: Option<PathBuf>,
        /// One event (JSON).
        #[arg(long, conflicts_with = "events", required_unless_present = "events")]
        event: Option<PathBuf>,
        /// NDJSON events, one per line; `-` for standard input.
        #[arg(long)]
        events: Option<String>,
        /// A GetExecutionHistory response for offline diagnosis.
        #[arg(long)]
        history: Option<PathBuf>,
        /// For each policy that did not match, name the first field that failed.
        #[arg(long)]
        why: bool,
    },
    /// Run the policy test cases under `cases/` folders.
    Test {
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Backtest a policy change: replay recorded events through both policy sets and
    /// print the decisions that differ.
    Plan {
        /// The policies before the change.
        #[arg(long)]
        base: PathBuf,
        /// The policies after the change.
        #[arg(long)]
        head: PathBuf,
        /// NDJSON events; `-` for standard input.
        #[arg(long)]
        events: String,
    },
    /// Stop remediator from acting (globally, for a policy or for a target) until the
    /// pause expires or `resume`. While paused it still records and notifies.
    Pause {
        #[arg(long, conflicts_with_all = ["target", "pipeline", "account"])]
        policy: Option<String>,
        /// A target ARN or ARN glob.
        #[arg(long, conflicts_with_all = ["pipeline", "account"])]
        target: Option<String>,
        /// Everything of a pipeline: every resource whose name starts with this prefix.
        #[arg(long, conflicts_with = "account")]
        pipeline: Option<String>,
        /// Everything in one AWS account (12 digits): its resources and its incidents.
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        reason: String,
        /// How long, e.g. 2h (required: every pause expires).
        #[arg(long = "for")]
        duration: String,
    },
    /// Lift a pause (no scope: the global pause).
    Resume {
        #[arg(long, conflicts_with_all = ["target", "pipeline", "account"])]
        policy: Option<String>,
        #[arg(long, conflicts_with_all = ["pipeline", "account"])]
        target: Option<String>,
        #[arg(long, conflicts_with = "account")]
        pipeline: Option<String>,
        #[arg(long)]
        account: Option<String>,
    },
    /// The guide's "Stop Pipeline": pause remediator for the pipeline, disable its rules,
    /// stop its running executions (in that order; recorded; one summary). `--lift`
    /// enables again the rules it disabled and ends the pause.
    EmergencyStop {
        /// The pipeline's name prefix, e.g. thera-pipeline-
        #[arg(long)]
        pipeline: String,
        /// Why (shown in the pause, the executions' histories and the summaries).
        #[arg(long, required_unless_present = "lift")]
        reason: Option<String>,
        /// How long the pause holds, e.g. 4h (required: every pause expires).
        #[arg(long = "for", required_unless_present = "lift")]
        duration: Option<String>,
        /// Put back what the stop changed.
        #[arg(long, conflicts_with_all = ["reason", "duration"])]
        lift: bool,
        /// Show what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the pauses in force.
    Pauses,
    /// Send the storm digests whose window has closed (the scheduled sweep does too).
    Digests,
    /// Handle every execution of the state machines that failed since the last sweep
    /// (status-change events are best effort; this catches the ones never delivered).
    Sweep {
        /// State machine ARNs (default: REMEDIATOR_STATE_MACHINES, comma-separated).
        #[arg(long = "state-machine")]
        state_machines: Vec<String>,
        /// How far back (default: since the last sweep, or 24h).
        #[arg(long)]
        since: Option<String>,
    },
    /// What the policies did with failures, per policy and error: incidents, remediated,
    /// healed, still failing, escalated, refused by each guard, time to heal.
    Report {
        /// How far back, e.g. 30d (at most 366d).
        #[arg(long, default_value = "30d")]
        since: String,
        /// table, json (one line per policy and error) or markdown.
        #[arg(long, default_value = "table", value_parser = ["table", "json", "markdown"])]
        format: String,
        /// Only these policies (repeat the flag for more).
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// Only failures in this account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Put back what an incident's remediation changed (from its before-images).
    Undo {
        /// The incident key, as printed by `handle` and `history`.
        incident: String,
    },
    /// Incidents, actions, guards and outcomes as a table.
    History {
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long)]
        policy: Option<String>,
        /// Only incidents whose actions touched this target (substring).
        #[arg(long)]
        target: Option<String>,
        /// Only incidents in this account.
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve the plan an incident awaits approval for (your IAM identity, from STS, is
    /// checked against the policy's approvers and recorded); it is applied now, after
    /// every guard is checked again.
    Approve {
        /// The incident (as the summary names it).
        incident: String,
    },
    /// Reject the plan an incident awaits approval for: nothing is done, and the reason
    /// is recorded and told.
    Reject {
        incident: String,
        #[arg(long)]
        reason: String,
    },
    /// Close the circuit breaker of a target after a person fixed it.
    Reset {
        /// The target ARN (for executions: the state machine ARN).
        target: String,
    },
    /// Print the JSON Schema of policy files (policies/schema.json).
    Schema,
    /// Print the deployment's SAM template (infra/template.json), with the EventBridge
    /// rules and IAM permissions the policies need.
    Template {
        #[arg(long)]
        policies: Option<PathBuf>,
        /// The member-account template (infra/member-template.json, for StackSets)
        /// instead: forwarding rules and the member role.
        #[arg(long)]
        member: bool,
    },
    /// The EventBridge rule patterns the deployment must subscribe to, as JSON.
    Rules {
        #[arg(long)]
        policies: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return match lambda::main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("remediator: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    init_logging(false);
    let result = match cli.command {
        Command::Handle { event } => runtime().and_then(|rt| rt.block_on(handle(&event))),
        Command::Bootstrap => runtime().and_then(|rt| rt.block_on(bootstrap())),
        Command::Validate { policies } => validate(policies.as_deref()),
        Command::Explain { policies, event, events, history, why } => {
            explain_cmd(policies.as_deref(), event.as_deref(), events.as_deref(), history.as_deref(), why)
        }
        Command::Test { policies } => test_cmd(policies.as_deref()),
        Command::Pause { policy, target, pipeline, account, reason, duration } => {
            runtime().and_then(|rt| rt.block_on(pause_cmd(scope(policy, target, pipeline, account), reason, &duration)))
        }
        Command::Resume { policy, target, pipeline, account } => {
            runtime().and_then(|rt| rt.block_on(resume_cmd(scope(policy, target, pipeline, account))))
        }
        Command::EmergencyStop { pipeline, reason, duration, lift, dry_run } => runtime().and_then(|rt| {
            rt.block_on(emergency_cmd(&pipeline, reason.as_deref(), duration.as_deref(), lift, dry_run))
        }),
        Command::Pauses => runtime().and_then(|rt| rt.block_on(pauses_cmd())),
        Command::Digests => runtime().and_then(|rt| {
            rt.block_on(async {
                let (handler, _, lease) = build().await?;
                let inv = Invocation::for_lease(cli_owner("digests")?, lease);
                let sent = handler.flush_digests(&inv).await.context("sending digests")?;
                println!("{sent} digest(s) sent");
                Ok(ExitCode::SUCCESS)
            })
        }),
        Command::Sweep { state_machines, since } => {
            runtime().and_then(|rt| rt.block_on(sweep_cmd(state_machines, since.as_deref())))
        }
        Command::Undo { incident } => runtime().and_then(|rt| rt.block_on(undo_cmd(&incident))),
        Command::History { since, policy, target, account, json } => runtime().and_then(|rt| {
            rt.block_on(history_cmd(&since, policy.as_deref(), target.as_deref(), account.as_deref(), json))
        }),
        Command::Report { since, format, policies, account } => {
            runtime().and_then(|rt| rt.block_on(report_cmd(&since, &format, &policies, account.as_deref())))
        }
        Command::Reset { target } => runtime().and_then(|rt| rt.block_on(reset_cmd(&target))),
        Command::Approve { incident } => {
            runtime().and_then(|rt| rt.block_on(answer_cmd(&incident, remediator::approval::Decision::Approve)))
        }
        Command::Reject { incident, reason } => runtime().and_then(|rt| {
            rt.block_on(answer_cmd(&incident, remediator::approval::Decision::Reject { reason: reason.clone() }))
        }),
        Command::Template { policies, member } => {
            load_policies(policies.as_deref()).map_err(Into::into).and_then(|set| {
                let template =
                    if member { remediator::infra::member_template(&set) } else { remediator::infra::template(&set) };
                let template = remediator::schema::sorted_value(template);
                println!("{}", serde_json::to_string_pretty(&template)?);
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Schema => {
            print!("{}", remediator::schema::policy_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { base, head, events } => plan_cmd(&base, &head, &events),
        Command::Rules { policies } => load_policies(policies.as_deref()).map_err(Into::into).and_then(|set| {
            println!("{}", serde_json::to_string_pretty(&json!({"rules": remediator::rules::rules(&set)}))?);
            Ok(ExitCode::SUCCESS)
        }),
    };
    if std::env::var_os("REMEDIATOR_REPORT_PEAK_RSS").is_some() {
        // For `make bench`: the process's peak resident memory, as the kernel counts it.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("peak-rss {}", line.trim_start_matches("VmHWM:").trim());
        }
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("remediator: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// JSON logs to stderr; level from `REMEDIATOR_LOG` (or `RUST_LOG`).
fn init_logging(lambda: bool) {
    let default = if lambda { "info" } else { "warn" };
    let filter =
        std::env::var("REMEDIATOR_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| default.to_string());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn load_policies(path: Option<&Path>) -> Result<PolicySet, PolicyErrors> {
    match path {
        Some(p) => PolicySet::load(p),
        None => PolicySource::Bundled.load(),
    }
}

/// An owner for the claims of one CLI run.
fn cli_owner(what: &str) -> Result<String> {
    Ok(format!(
        "{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos()
    ))
}

/// The handler, the state table it records in, and the CLI's lease, from one
/// configuration and one SDK setup (the Lambda's init builds them once).
async fn build() -> Result<(Handler, Arc<StateTable>, std::time::Duration)> {
    let config = Config::from_env()?;
    let policies = config.policies.load()?;
    let sdk = sdk_config().await;
    let table = Arc::new(StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table));
    let members = (!config.members.is_none()).then(|| {
        Arc::new(MemberRoles::new(
            sdk.clone(),
            config.member_role.clone(),
            config.external_id.clone(),
            config.role_arn.clone(),
        )) as Arc<dyn remediator::apply::MemberAccess>
    });
    let handler = Handler {
        policies,
        dry_run: config.dry_run,
        allow: config.allow,
        clients: Arc::new(remediator::aws::clients(&sdk)),
        accounts: remediator::handle::Accounts {
            // Which account "home" is decides what may be acted on: without it, nothing
            // starts (rather than every event being refused).
            home: Some(match config.role_arn.as_deref().and_then(remediator::accounts::account_of_role) {
                Some(account) => account.to_string(),
                None => remediator::aws::accounts::caller(&sdk).await.map(|c| c.account).context(
                    "learning remediator's own account (set REMEDIATOR_ROLE_ARN, or give credentials STS answers for)",
                )?,
            }),
            members: config.members.clone(),
            access: members,
        },
        locks: table.clone(),
        timers: config.timer.as_ref().map(|(target, role)| {
            Arc::new(Scheduler::new(aws_sdk_scheduler::Client::new(&sdk), target, role))
                as Arc<dyn remediator::apply::Timers>
        }),
        identity: remediator::triage::Identity {
            member_role: (!config.members.is_none()).then(|| config.member_role.clone()),
            role_arn: config.role_arn.clone(),
            session: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|n| !n.is_empty()),
        },
        digests: Some(table.clone() as Arc<dyn remediator::summary::Digests>),
        digest_window: config.digest_window,
        guards: table.clone(),
        log: table.clone(),
        notifier: Arc::new(SummaryTopic::new(aws_sdk_sns::Client::new(&sdk), &config.topic_arn)),
        links: match &config.approval_secret {
            None => None,
            Some(secret) => {
                let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|n| !n.is_empty());
                match remediator::aws::secrets::links(&sdk, secret, config.approval_url.as_deref(), function.as_deref())
                    .await
                {
                    Ok(links) => Some(Arc::new(links)),
                    // Approval still works from the command line; the summaries say how.
                    Err(e) => {
                        tracing::error!(error = %e, "approval links unavailable: summaries name `remediator approve` only");
                        None
                    }
                }
            }
        },
    };
    Ok((handler, table, config.lease))
}

fn scope(
    policy: Option<String>,
    target: Option<String>,
    pipeline: Option<String>,
    account: Option<String>,
) -> PauseScope {
    match (policy, target, pipeline, account) {
        (Some(p), ..) => PauseScope::Policy(p),
        (None, Some(t), ..) => PauseScope::Target(t),
        (None, None, Some(p), _) => PauseScope::Pipeline(p),
        (None, None, None, Some(a)) => PauseScope::Account(a),
        (None, None, None, None) => PauseScope::Global,
    }
}

async fn state_table() -> Result<StateTable> {
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
    Ok(StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table))
}

async fn pause_cmd(scope: PauseScope, reason: String, duration: &str) -> Result<ExitCode> {
    let length = remediator::policy::parse_duration(duration).map_err(|e| anyhow::anyhow!("--for: {e}"))?;
    if length.is_zero() {
        bail!("--for must be longer than 0s");
    }
    if reason.trim().is_empty() {
        bail!("--reason must say why (it is shown in every summary while paused)");
    }
    // A pause of nothing is worse than none: it looks like safety and stops nothing.
    match &scope {
        PauseScope::Policy(name) => {
            let config = Config::from_env()?;
            let policies = config.policies.load()?;
            if policies.get(name).is_none() {
                let known: Vec<&str> = policies.policies().iter().map(|p| p.name.as_str()).collect();
                bail!("--policy {name}: no such policy (policies: {})", known.join(", "));
            }
        }
        PauseScope::Target(pattern) => {
            if !pattern.starts_with("arn:") || pattern.split(':').count() < 6 {
                bail!("--target {pattern}: not an ARN or ARN pattern (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, with *)");
            }
            remediator::pattern::Glob::new(pattern).map_err(|e| anyhow::anyhow!("--target {pattern}: {e}"))?;
        }
        PauseScope::Pipeline(prefix) => check_prefix(prefix)?,
        PauseScope::Account(id) => {
            if !remediator::accounts::is_account_id(id) {
                bail!("--account {id}: not an AWS account id (12 digits)");
            }
        }
        PauseScope::Global => {}
    }
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let pause = Pause { scope, reason, until: remediator::clock::now() + length.as_secs() as i64, by };
    state_table().await?.set_pause(&pause).await.context("recording the pause")?;
    println!("paused {} until {}: {}", pause.scope.describe(), format_time(pause.until), pause.reason);
    Ok(ExitCode::SUCCESS)
}

/// A pipeline prefix names a pipeline's resources: at least 4 of a-z, 0-9, `-`, `_` and
/// `.`, ending with a separator (`thera-pipeline-`, not `thera`, which would also cover
/// `theranostics-*`, nor `rule`, which would cover every rule), so that it cannot pause
/// or stop more than one pipeline by accident.
fn check_prefix(prefix: &str) -> Result<()> {
    let valid = prefix.len() >= 4
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && prefix.ends_with(['-', '_', '.']);
    if !valid {
        bail!(
            "--pipeline `{prefix}`: a name prefix of a-z, 0-9, -, _ and . that ends with a separator \
             (e.g. thera-pipeline-)"
        );
    }
    Ok(())
}

async fn emergency_cmd(
    prefix: &str,
    reason: Option<&str>,
    duration: Option<&str>,
    lift: bool,
    dry_run: bool,
) -> Result<ExitCode> {
    use remediator::emergency::{survey, Emergency};
    check_prefix(prefix)?;
    let (handler, table, _) = build().await?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let now = remediator::clock::now();
    let emergency = Emergency {
        rules: handler.clients.rules.as_ref(),
        executions: handler.clients.executions.as_ref(),
        guards: handler.guards.as_ref(),
        records: table.as_ref(),
        notifier: handler.notifier.as_ref(),
    };
    let dry_run = dry_run || handler.dry_run;
    if dry_run {
        println!("dry run: nothing is changed");
    }
    if lift {
        let done = emergency.lift(prefix, &by, now, dry_run).await.context("lifting the emergency stop")?;
        let Some(record) = done.record else {
            if done.paused_without_record {
                println!("no emergency stop of {prefix}* was recorded; its pause is ended");
            } else {
                println!("no emergency stop of {prefix}* is in force: nothing to lift");
            }
            return Ok(ExitCode::SUCCESS);
        };
        let would = if dry_run { "would enable" } else { "enabled" };
        for rule in &record.rules_enabled {
            println!("{would} rule {rule}");
        }
        for rule in &record.rules_left {
            println!("left rule {rule}");
        }
        for failure in &done.failures {
            println!("NOT DONE: {failure}");
        }
        if !done.failures.is_empty() {
            println!("the stop stays in force (and its pause): run the lift again");
            return Ok(ExitCode::FAILURE);
        }
        if !dry_run {
            println!("resumed pipeline {prefix}* (stopped executions are not started again)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let reason = reason.unwrap_or_default();
    if reason.trim().is_empty() {
        bail!("--reason must say why (it is shown in the pause, the stopped executions and the summary)");
    }
    let length =
        remediator::policy::parse_duration(duration.unwrap_or_default()).map_err(|e| anyhow::anyhow!("--for: {e}"))?;
    if length.is_zero() {
        bail!("--for must be longer than 0s");
    }
    if dry_run {
        let found = survey(emergency.rules, emergency.executions, prefix).await.context("listing the pipeline")?;
        println!("would pause remediator for pipeline {prefix}* for {}", remediator::policy::format_duration(length));
        for rule in &found.rules {
            println!("would disable rule {rule}");
        }
        for rule in &found.disabled {
            println!("rule {rule} is disabled already: left as it is");
        }
        for execution in &found.executions {
            println!("would stop execution {execution}");
        }
        for failure in &found.failures {
            println!("could not list: {failure}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let record = emergency
        .stop(prefix, reason, &by, now, now + length.as_secs() as i64)
        .await
        .context("stopping the pipeline")?;
    println!("paused remediator for pipeline {prefix}* until {}", format_time(record.until));
    for rule in &record.rules_disabled {
        println!("disabled rule {rule}");
    }
    for execution in &record.executions_stopped {
        println!("stopped execution {execution}");
    }
    for failure in &record.failures {
        println!("NOT DONE: {failure}");
    }
    Ok(if record.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn resume_cmd(scope: PauseScope) -> Result<ExitCode> {
    let existed = state_table().await?.clear_pause(&scope).await.context("removing the pause")?;
    if existed {
        println!("resumed {}", scope.describe());
    } else {
        println!("no pause of {} was set", scope.describe());
    }
    Ok(ExitCode::SUCCESS)
}

async fn sweep_cmd(mut state_machines: Vec<String>, since: Option<&str>) -> Result<ExitCode> {
    if state_machines.is_empty() {
        state_machines = state_machines_from_env();
    }
    if state_machines.is_empty() {
        bail!("name the state machines: --state-machine ARN (repeatable) or REMEDIATOR_STATE_MACHINES");
    }
    let (handler, table, lease) = build().await?;
    let started = remediator::clock::now();
    let since = match since {
        Some(d) => {
            started
                - remediator::policy::parse_duration(d).map_err(|e| anyhow::anyhow!("--since: {e}"))?.as_secs() as i64
        }
        // An hour of overlap with the last sweep: duplicates are absorbed anyway.
        None => table.last_sweep().await?.map(|t| t - 3600).unwrap_or(started - 86400),
    };
    let inv = Invocation::for_lease(cli_owner("sweep")?, lease);
    let report = remediator::sweep::run(&handler, &state_machines, since, &inv).await.context("sweeping")?;
    for handled in &report.handled {
        let line = match handled {
            Ok(outcome) => serde_json::to_value(outcome)?,
            Err(e) => json!({"error": e.to_string(), "retryable": e.is_retryable()}),
        };
        println!("{line}");
    }
    if report.abandoned > 0 {
        eprintln!("remediator: {} handling(s) had died after their claim and were taken over", report.abandoned);
    }
    for key in &report.unrecoverable {
        eprintln!("remediator: incident {key} was claimed and never completed, and kept no event to handle again");
    }
    if let Err(e) = &report.digests {
        eprintln!("remediator: digests not sent: {e}");
    }
    if report.failed == 0 {
        table.set_last_sweep(started).await.context("recording the sweep")?;
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

async fn undo_cmd(incident: &str) -> Result<ExitCode> {
    use remediator::actions::Undone;
    let (handler, table, _) = build().await?;
    let key = remediator::incident::IncidentKey::from_stored(incident);
    let item = table.get(&key).await?.with_context(|| format!("no incident {incident} in the state table"))?;
    if item.outcome.is_none() {
        bail!("the incident has no recorded outcome");
    }
    if let Some(at) = item.undone_at {
        // Once: a second undo would fight whoever changed the target back since.
        let by = item.undone_by.as_deref().unwrap_or("-");
        println!("incident {incident} was undone already at {} by {by}: nothing done", format_time(at));
        return Ok(ExitCode::SUCCESS);
    }
    let reversals = remediator::actions::reversals(&item.steps());
    if reversals.is_empty() {
        println!("incident {incident} changed nothing that can be put back");
        return Ok(ExitCode::SUCCESS);
    }
    // The account the incident happened in: its changes are put back there, with the
    // member role for a member account, never with the central credentials.
    let account = item
        .stored_event
        .as_deref()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .and_then(|e| e.get("account").and_then(serde_json::Value::as_str).map(str::to_string));
    let clients = match remediator::accounts::reach(
        account.as_deref(),
        handler.accounts.home.as_deref(),
        &handler.accounts.members,
    ) {
        remediator::accounts::Reach::Home => handler.clients.clone(),
        remediator::accounts::Reach::Member(a) => match &handler.accounts.access {
            Some(members) => members.clients(&a).await.with_context(|| format!("reaching account {a} to undo"))?,
            None => bail!("account {a}: no member access is configured; nothing undone"),
        },
        remediator::accounts::Reach::Refused(why) => bail!("{why}; nothing undone"),
    };
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let (mut failed, mut refused) = (0, 0);
    let mut results = Vec::new();
    for r in &reversals {
        // First what the undo would do (nothing, when the target is back already or was
        // changed by someone since); then, for a real change, the guards as for any action,
        // with the pauses read right before acting. A suppression an earlier undo left
        // does not stop a person's undo.
        let (functions, rules, objects) =
            (clients.functions.as_ref(), clients.rules.as_ref(), clients.objects.as_ref());
        let preview = remediator::actions::undo(r, functions, rules, objects, true).await;
        let undone = match preview {
            Ok(Undone::WouldHave(_)) => {
                let now = remediator::clock::now();
                let mut guards = handler.guards.load(now, &[]).await.context("reading pauses")?;
                guards.pauses.retain(|p| !p.by.starts_with(UNDO_PAUSE_BY));
                let in_account = account.as_deref();
                if let Some(reason) =
                    remediator::guard::pause_refusal_in(&guards, &r.policy, Some(&r.target), in_account, now)
                {
                    Ok(Undone::Refused(reason))
                } else if !handler.allow.allows(&r.target) {
                    Ok(Undone::Refused(format!("{} is outside the allow-list", r.target)))
                } else {
                    // The reversal is itself what the shipped policies remediate (a rule disabled, an
                    // object deleted): before making it, suppress remediation of this target for an
                    // hour, as a pause anyone can see (`remediator pauses`) and lift (`remediator
                    // resume`).
                    if !handler.dry_run {
                        let pause = Pause {
                            scope: PauseScope::Target(r.target.clone()),
                            reason: format!("undo of incident {incident} by {by}: its reversal is not remediated"),
                            until: remediator::clock::now() + UNDO_SUPPRESSION.as_secs() as i64,
                            by: format!("{UNDO_PAUSE_BY} ({by})"),
                        };
                        table.set_pause(&pause).await.context("recording the suppression of the reversal")?;
                    }

                    remediator::actions::undo(r, functions, rules, objects, handler.dry_run).await
                }
            }
            other => other,
        };
        let undone = match undone {
            Ok(undone) => undone,
            Err(e) => {
                failed += 1;
                println!("FAILED to undo {} on {}: {e}", r.action, r.target);
                results.push(json!({"action": r.action, "target": r.target, "error": e.to_string()}));
                continue;
            }
        };
        match &undone {
            Undone::Done(d) => println!("undone: {d} ({})", r.target),
            Undone::Already(d) => println!("nothing to undo: {d}"),
            Undone::Refused(d) => {
                refused += 1;
                println!("refused: {d}");
            }
            Undone::WouldHave(d) => println!("dry run: would {d}"),
        }
        results.push(json!({"action": r.action, "target": r.target, "undo": undone}));
    }
    if !handler.dry_run {
        table.mark_undone(&key, &by, &Value::Array(results)).await?;
    }
    Ok(if failed == 0 && refused == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Who the suppression an undo leaves is by.
const UNDO_PAUSE_BY: &str = "remediator undo";

/// How long remediator leaves alone a target whose change a person undid.
const UNDO_SUPPRESSION: std::time::Duration = std::time::Duration::from_secs(3600);

async fn history_cmd(
    since: &str,
    policy: Option<&str>,
    target: Option<&str>,
    account: Option<&str>,
    as_json: bool,
) -> Result<ExitCode> {
    let window = remediator::policy::parse_duration(since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let now = remediator::clock::now();
    let items = state_table().await?.incidents(now - window.as_secs() as i64).await?;
    let mut rows = Vec::new();
    for item in items {
        if policy.is_some_and(|p| item.policy.as_deref() != Some(p)) {
            continue;
        }
        let in_account = item.account();
        if account.is_some_and(|a| in_account.as_deref() != Some(a)) {
            continue;
        }
        let steps = item.steps();
        if target.is_some_and(|t| !steps.iter().any(|a| a.target.as_deref().is_some_and(|x| x.contains(t)))) {
            continue;
        }
        let actions: Vec<String> = steps.iter().map(|a| format!("{}:{}", a.action, a.result.as_str())).collect();
        // A claim that never completed: still running, given back for a retry, or dead
        // (its lease ran out: the next delivery or the sweep takes it over).
        let resolution = match item.status {
            ClaimStatus::InProgress if item.lease_until < now => "abandoned".to_string(),
            ClaimStatus::InProgress => "in-progress".to_string(),
            ClaimStatus::Released | ClaimStatus::Failed => {
                format!("released ({})", item.release_note.as_deref().unwrap_or("-"))
            }
            ClaimStatus::Completed => item.resolution.map_or("-", |r| r.as_str()).to_string(),
            ClaimStatus::Unknown => "unknown".to_string(),
        };
        rows.push(json!({
            "time": format_time(item.at()),
            "incident": item.incident,
            "account": in_account.as_deref().unwrap_or("-"),
            "policy": item.policy.as_deref().unwrap_or("-"),
            "resolution": resolution,
            "approval": item.approval_state.map(|s| match &item.approval_by {
                Some(by) => format!("{} by {by}", s.as_str()),
                None => s.as_str().to_string(),
            }),
            "verification": item.verification.map_or("-", |v| v.as_str()),
            "actions": actions.join(" "),
            "guards": steps.iter().filter(|a| a.result == StepResult::Refused).map(|a| a.detail.as_str()).collect::<Vec<_>>(),
        }));
    }
    if as_json {
        for r in &rows {
            println!("{r}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20}  {:<12}  {:<17}  {:<13}  {:<28}  {:<40}  INCIDENT",
        "TIME", "ACCOUNT", "RESOLUTION", "VERIFIED", "POLICY", "ACTIONS"
    );
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<20}  {:<12}  {:<17}  {:<13}  {:<28}  {:<40}  {}",
            s("time"),
            s("account"),
            s("resolution"),
            s("verification"),
            s("policy"),
            s("actions"),
            s("incident")
        );
        if let Some(approval) = r["approval"].as_str() {
            println!("{:<20}  approval: {approval}", "");
        }
        for g in r["guards"].as_array().into_iter().flatten() {
            println!("{:<20}  guard: {}", "", g.as_str().unwrap_or_default());
        }
    }
    println!("{} incident(s) since {since} ago", rows.len());
    Ok(ExitCode::SUCCESS)
}

async fn report_cmd(since: &str, format: &str, policies: &[String], account: Option<&str>) -> Result<ExitCode> {
    use remediator::record::IncidentLog;
    let window = remediator::policy::parse_duration(since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let now = remediator::clock::now();
    let table = Config::table_from_env().map_err(|e| anyhow::anyhow!(e))?;
    let table = StateTable::new(aws_sdk_dynamodb::Client::new(&sdk_config().await), &table);
    let mut rows = table.report_rows(now - window.as_secs() as i64, now).await.context("reading the report")?;
    if !policies.is_empty() {
        rows.retain(|r| r.policy.as_ref().is_some_and(|p| policies.contains(p)));
    }
    if let Some(account) = account {
        rows.retain(|r| r.account.as_deref() == Some(account));
    }
    let lines = remediator::report::lines(&rows);
    if lines.is_empty() && format == "markdown" {
        // A new policy, or one that never matched: say so rather than print an empty table.
        println!(
            "No incidents in the last {since} for {}.",
            if policies.is_empty() { "any policy".to_string() } else { policies.join(", ") }
        );
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        "json" => {
            for line in &lines {
                println!("{}", serde_json::to_string(line)?);
            }
        }
        "markdown" => print!("{}", remediator::report::markdown(&lines)),
        _ => {
            print!("{}", remediator::report::table(&lines));
            println!("{} incident(s) since {since} ago", rows.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `approve` / `reject`: the caller's identity from STS, the answer through the handler.
async fn answer_cmd(incident: &str, decision: remediator::approval::Decision) -> Result<ExitCode> {
    let (handler, _, lease) = build().await?;
    let caller = remediator::aws::accounts::caller(&sdk_config().await)
        .await
        .context("learning who you are (STS GetCallerIdentity): an answer is recorded with its caller")?
        .arn;
    let answer = remediator::approval::Answer {
        incident: remediator::incident::IncidentKey::from_stored(incident),
        decision,
        via: remediator::approval::Via::Cli { caller },
    };
    let inv = Invocation::for_lease(cli_owner("answer")?, lease);
    let outcome = handler.answer(answer, &inv).await?;
    println!("{}", serde_json::to_string(&outcome)?);
    use remediator::handle::Resolution;
    Ok(match outcome.resolution {
        Resolution::Refused | Resolution::Failed | Resolution::Ignored => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

async fn reset_cmd(target: &str) -> Result<ExitCode> {
    let key = remediator::guard::circuit_key(target);
    if state_table().await?.reset(&key).await.context("closing the circuit")? {
        println!("circuit of {key} closed: remediator may act on it again");
    } else {
        println!("no circuit was open or counting for {key}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn pauses_cmd() -> Result<ExitCode> {
    let pauses = state_table().await?.load(remediator::clock::now(), &[]).await.context("reading pauses")?.pauses;
    if pauses.is_empty() {
        println!("no pause in force");
    }
    for p in pauses {
        println!("{}\tuntil {}\tby {}\t{}", p.scope.describe(), format_time(p.until), p.by, p.reason);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &str) -> Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    }
    Ok(text)
}

async fn handle(path: &str) -> Result<ExitCode> {
    let text = read_input(path)?;
    let (handler, _, lease) = build().await?;
    let inv = Invocation::for_lease(cli_owner("cli")?, lease);
    let mut failures = 0;
    let mut count = 0;
    let stdout = std::io::stdout();
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    loop {
        let item = stream.next();
        let Some(item) = item else { break };
        count += 1;
        let line = match item {
            Ok(document) => match handler.handle(document, &inv).await {
                Ok(outcome) => serde_json::to_value(&outcome)?,
                Err(e) => {
                    failures += 1;
                    eprintln!("remediator: event {count}: {e}");
                    let mut v = json!({"error": e.to_string(), "retryable": e.is_retryable()});
                    if let HandleError::Remediation { outcome, .. } = &e {
                        v["outcome"] = serde_json::to_value(outcome)?;
                    }
                    v
                }
            },
            Err(e) => {
                failures += 1;
                eprintln!("remediator: event {count}: malformed event: not valid JSON: {e}");
                let v = json!({"error": format!("malformed event: not valid JSON: {e}"), "retryable": false});
                writeln!(stdout.lock(), "{v}")?;
                break; // the rest of the stream cannot be framed reliably
            }
        };
        writeln!(stdout.lock(), "{line}")?;
    }
    if count == 0 {
        bail!("no event in {path}");
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn bootstrap() -> Result<ExitCode> {
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
    let table = StateTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table);
    let created = table.ensure().await.context("creating the state table")?;
    println!("table {}: {}", config.table, if created { "created" } else { "exists" });
    let moved = table.move_to_shards().await.context("moving guard state to its targets' partitions")?;
    if moved > 0 {
        println!("guard state: {moved} item(s) of an earlier version moved to their targets' partitions");
    }
    let topic = SummaryTopic::new(aws_sdk_sns::Client::new(&sdk), &config.topic_arn);
    let arn = topic.ensure().await.context("creating the summary topic")?;
    println!("topic {arn}: ready");
    if arn != config.topic_arn {
        eprintln!("remediator: note: AWS named the topic {arn}; set REMEDIATOR_TOPIC_ARN to it");
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(path: Option<&Path>) -> Result<ExitCode> {
    let ok = offline::validate(load_policies(path), &mut std::io::stdout().lock())?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn explain_cmd(
    policies: Option<&Path>,
    event: Option<&Path>,
    events: Option<&str>,
    history: Option<&Path>,
    why: bool,
) -> Result<ExitCode> {
    let set = load_policies(policies)?;
    let allow = offline::allow_list_from_env()?;
    let history = history.map(offline::read_history).transpose()?;
    let explainer = offline::Explainer { set: &set, allow: &allow, history: history.as_deref(), why };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let failures = if let Some(path) = event {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        usize::from(!explainer.one(&text, &mut out)?)
    } else if let Some(path) = events {
        explainer.lines(offline::open_events(path)?, &mut out)?
    } else {
        0
    };
    out.flush()?;
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn plan_cmd(base: &Path, head: &Path, events: &str) -> Result<ExitCode> {
    let before = PolicySet::load(base).with_context(|| format!("loading the base policies {}", base.display()))?;
    let after = PolicySet::load(head).with_context(|| format!("loading the head policies {}", head.display()))?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let counts = offline::plan(&before, &after, offline::open_events(events)?, &mut out)?;
    out.flush()?;
    eprintln!("{} of {} decisions change", counts.changed, counts.events);
    Ok(ExitCode::SUCCESS)
}

fn test_cmd(policies: Option<&Path>) -> Result<ExitCode> {
    let root = policies.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("policies"));
    let set = load_policies(policies)?;
    let ok = offline::test(&set, &root, &offline::allow_list_from_env()?, &mut std::io::stdout().lock())?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The Lambda face: clients and policies built once at init, then the runtime loop.
mod lambda {
    use super::*;
    use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
    use remediator::handle::HandleError;

    struct State {
        handler: Handler,
        table: Arc<StateTable>,
        state_machines: Vec<String>,
    }

    pub fn main() -> Result<()> {
        init_logging(true);
        runtime()?.block_on(async {
            let (handler, table, _) = build().await?;
            let state = Arc::new(State { handler, table, state_machines: state_machines_from_env() });
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
                let state = Arc::clone(&state);
                async move {
                    // The claims of this invocation last until its deadline plus a margin:
                    // never taken from it while it runs, soon after it dies.
                    let inv = Invocation::for_deadline(
                        format!("lambda-{}", event.context.request_id),
                        event.context.deadline,
                        LEASE_MARGIN,
                    );
                    let is_sweep = event.payload.get("source").and_then(Value::as_str) == Some("remediator")
                        && event.payload.get("detail-type").and_then(Value::as_str) == Some("Sweep");
                    if is_sweep {
                        return sweep(&state, &inv).await;
                    }
                    // The function URL: a person answering a request for approval.
                    if remediator::approval::is_http(&event.payload) {
                        return Ok(remediator::approval::http(&state.handler, &event.payload, &inv).await);
                    }
                    let failed_at =
                        event.payload.get("time").and_then(Value::as_str).and_then(remediator::event::parse_timestamp);
                    match state.handler.handle(event.payload, &inv).await {
                        Ok(outcome) => {
                            emit_metrics(&outcome, failed_at);
                            Ok(serde_json::to_value(outcome).unwrap_or(Value::Null))
                        }
                        Err(e) => {
                            if let HandleError::Remediation { outcome, .. } = &e {
                                emit_metrics(outcome, failed_at);
                            }
                            Err(diagnostic(&e))
                        }
                    }
                }
            }))
            .await
            .map_err(|e| anyhow::anyhow!("Lambda runtime: {e}"))
        })
    }

    fn diagnostic(e: &HandleError) -> Diagnostic {
        tracing::error!(error = %remediator::redact::text(&e.to_string()), retryable = e.is_retryable(), "event not handled");
        Diagnostic {
            error_type: if e.is_retryable() { "Retryable".into() } else { "NonRetryable".into() },
            error_message: remediator::redact::text(&e.to_string()),
        }
    }

    /// One EMF line on stdout per incident: CloudWatch makes metrics of it.
    fn emit_metrics(outcome: &remediator::handle::Outcome, failed_at: Option<i64>) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        if let Some(line) = remediator::metrics::emf(outcome, failed_at, now_ms) {
            println!("{line}");
        }
    }

    /// The scheduled sweep: every failure since the last sweep and every handling that
    /// died, through the same path; then the digests due.
    async fn sweep(state: &State, inv: &Invocation) -> Result<Value, Diagnostic> {
        let retryable =
            |e: &dyn std::fmt::Display| Diagnostic { error_type: "Retryable".into(), error_message: e.to_string() };
        let started = remediator::clock::now();
        let since =
            state.table.last_sweep().await.map_err(|e| retryable(&e))?.map(|t| t - 3600).unwrap_or(started - 86400);
        let report = remediator::sweep::run(&state.handler, &state.state_machines, since, inv)
            .await
            .map_err(|e| retryable(&e))?;
        for outcome in report.handled.iter().flatten() {
            emit_metrics(outcome, None);
        }
        for key in &report.unrecoverable {
            tracing::error!(incident = %key, "claimed and never completed, and no event kept to handle again");
        }
        if let Err(e) = &report.digests {
            tracing::error!(error = %e, "sweep: digests not sent");
        }
        let now_ms = remediator::clock::now().saturating_mul(1000);
        println!("{}", remediator::metrics::sweep_emf(report.abandoned, report.unrecoverable.len(), now_ms));
        if report.failed == 0 {
            state.table.set_last_sweep(started).await.map_err(|e| retryable(&e))?;
        }
        Ok(json!({"sweep": {
            "handled": report.handled.len() - report.failed,
            "failed": report.failed,
            "abandoned": report.abandoned,
            "since": format_time(since),
        }}))
    }
}

/// How long after an invocation's deadline its claims stay its own.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

fn state_machines_from_env() -> Vec<String> {
    std::env::var("REMEDIATOR_STATE_MACHINES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
