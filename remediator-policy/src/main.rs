//! `remediator-policy`: the policy tools without the AWS SDK, for policy pull requests
//! and editors. The same commands as `remediator validate | explain | test | plan |
//! schema`, from the same code (`remediator_policy::offline`), in a binary that builds
//! in seconds. Policies come from `--policies` (default: `policies/` in the working
//! directory), not from a bundled copy.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use remediator_policy::offline;
use remediator_policy::policy::PolicySet;

#[derive(Parser)]
#[command(name = "remediator-policy", version, about = "remediator's policy tools, without the AWS SDK")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check policies; print every error with file:line:column
    Validate {
        /// Policy directory or file
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
    },
    /// What remediator would decide for events, offline: one JSON line per event
    Explain {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// One event (JSON)
        #[arg(long, conflicts_with = "events", required_unless_present = "events")]
        event: Option<PathBuf>,
        /// Events as NDJSON (`-` for standard input)
        #[arg(long)]
        events: Option<String>,
        /// A saved GetExecutionHistory response for the diagnosis
        #[arg(long)]
        history: Option<PathBuf>,
        /// For policies that did not match, the first field that failed
        #[arg(long)]
        why: bool,
    },
    /// Run the case files under `cases/` folders
    Test {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
    },
    /// Backtest a policy change: the decisions that differ between two policy sets
    Plan {
        #[arg(long)]
        base: PathBuf,
        #[arg(long)]
        head: PathBuf,
        /// Recorded events as NDJSON (`-` for standard input)
        #[arg(long)]
        events: String,
    },
    /// The JSON Schema of policy files
    Schema,
}

fn load(path: &Path) -> Result<PolicySet> {
    PolicySet::load(path).map_err(Into::into)
}

fn run(command: Command) -> Result<bool> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let ok = match command {
        Command::Validate { policies } => offline::validate(PolicySet::load(&policies), &mut out)?,
        Command::Explain { policies, event, events, history, why } => {
            let set = load(&policies)?;
            let allow = offline::allow_list_from_env()?;
            let history = history.as_deref().map(offline::read_history).transpose()?;
            let explainer = offline::Explainer { set: &set, allow: &allow, history: history.as_deref(), why };
            match (event, events) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    explainer.one(&text, &mut out)?
                }
                (None, Some(path)) => explainer.lines(offline::open_events(&path)?, &mut out)? == 0,
                (None, None) => true,
            }
        }
        Command::Test { policies } => {
            let set = load(&policies)?;
            offline::test(&set, &policies, &offline::allow_list_from_env()?, &mut out)?
        }
        Command::Plan { base, head, events } => {
            let before = load(&base).with_context(|| format!("loading the base policies {}", base.display()))?;
            let after = load(&head).with_context(|| format!("loading the head policies {}", head.display()))?;
            let counts = offline::plan(&before, &after, offline::open_events(&events)?, &mut out)?;
            eprintln!("{} of {} decisions change", counts.changed, counts.events);
            true
        }
        Command::Schema => {
            out.write_all(remediator_policy::schema::policy_schema().as_bytes())?;
            true
        }
    };
    out.flush()?;
    Ok(ok)
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("remediator-policy: {e:#}");
            ExitCode::from(2)
        }
    }
}
