//! `remediator report`: what the policies did with the failures, per policy and failure
//! class (the error), so that a reviewer sees whether a policy actually heals: how many
//! incidents, remediated, healed (a retry that succeeded), still failing, escalated to a
//! person, refused by each guard, and how long from failure to healed (median and p90).
//!
//! The rows come from the state table's report partitions (one per month, read with a
//! query); this module only counts, so it is tested without AWS.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::outcome::Resolution;
use crate::record::{ReportRow, Verdict};

/// One line of the report: a policy and a failure class.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Line {
    /// `-` for failures no policy matched.
    pub policy: String,
    pub error: String,
    pub incidents: usize,
    pub remediated: usize,
    /// Dry-run: what would have been remediated.
    pub would_remediate: usize,
    pub healed: usize,
    pub still_failing: usize,
    /// Handed to a person: reported only, a remediation that failed, or no policy.
    pub escalated: usize,
    /// The accounts these incidents happened in (`-` for rows that do not say).
    pub accounts: Vec<String>,
    /// Steps refused, by guard (`paused`, `cooling-down`, `attempts-exhausted`, ...).
    pub refused: BTreeMap<String, usize>,
    /// Seconds from the failure to the success of its retry.
    pub median_seconds_to_heal: Option<i64>,
    pub p90_seconds_to_heal: Option<i64>,
}

/// Counts rows into lines, most incidents first.
pub fn lines(rows: &[ReportRow]) -> Vec<Line> {
    let mut by: BTreeMap<(String, String), (Line, Vec<i64>)> = BTreeMap::new();
    for row in rows {
        let policy = row.policy.clone().unwrap_or_else(|| "-".into());
        let error = row.error.clone().unwrap_or_else(|| "-".into());
        let (line, heal) = by
            .entry((policy.clone(), error.clone()))
            .or_insert_with(|| (Line { policy, error, ..Line::default() }, Vec::new()));
        line.incidents += 1;
        let account = row.account.clone().unwrap_or_else(|| "-".into());
        if !line.accounts.contains(&account) {
            line.accounts.push(account);
            line.accounts.sort();
        }
        match row.resolution {
            Some(Resolution::Remediated) => line.remediated += 1,
            Some(Resolution::WouldRemediate) => line.would_remediate += 1,
            Some(Resolution::Notified | Resolution::Failed | Resolution::NoPolicy) => line.escalated += 1,
            _ => {}
        }
        for refusal in &row.refusals {
            *line.refused.entry(refusal.clone()).or_default() += 1;
        }
        match (row.verdict, row.verified_at) {
            (Some(Verdict::Healed), Some(at)) => {
                line.healed += 1;
                heal.push((at - row.failed_at).max(0));
            }
            (Some(Verdict::Healed), None) => line.healed += 1,
            (Some(Verdict::StillFailing), _) => line.still_failing += 1,
            (None, _) => {}
        }
    }
    let mut out: Vec<Line> = by
        .into_values()
        .map(|(mut line, mut heal)| {
            heal.sort_unstable();
            line.median_seconds_to_heal = percentile(&heal, 50);
            line.p90_seconds_to_heal = percentile(&heal, 90);
            line
        })
        .collect();
    out.sort_by(|a, b| b.incidents.cmp(&a.incidents).then_with(|| (&a.policy, &a.error).cmp(&(&b.policy, &b.error))));
    out
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn duration(seconds: Option<i64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{:.1}h", s as f64 / 3600.0),
    }
}

/// The accounts of a line: one by its id, a few listed, many counted.
fn accounts(line: &Line) -> String {
    match line.accounts.len() {
        0 => "-".into(),
        1..=3 => line.accounts.join(","),
        n => format!("{n} accounts"),
    }
}

fn refused(line: &Line) -> String {
    if line.refused.is_empty() {
        return "-".into();
    }
    line.refused.iter().map(|(k, n)| format!("{k}:{n}")).collect::<Vec<_>>().join(" ")
}

const HEADERS: [&str; 12] = [
    "POLICY",
    "ERROR",
    "ACCOUNTS",
    "INCIDENTS",
    "REMEDIATED",
    "HEALED",
    "STILL FAILING",
    "ESCALATED",
    "DRY RUN",
    "REFUSED",
    "MEDIAN TO HEAL",
    "P90 TO HEAL",
];

fn cells(line: &Line) -> [String; 12] {
    [
        line.policy.clone(),
        line.error.clone(),
        accounts(line),
        line.incidents.to_string(),
        line.remediated.to_string(),
        line.healed.to_string(),
        line.still_failing.to_string(),
        line.escalated.to_string(),
        line.would_remediate.to_string(),
        refused(line),
        duration(line.median_seconds_to_heal),
        duration(line.p90_seconds_to_heal),
    ]
}

/// Aligned columns, for a terminal.
pub fn table(lines: &[Line]) -> String {
    let rows: Vec<[String; 12]> = lines.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let format = |cells: Vec<String>| {
        cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let mut out = format(HEADERS.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&format(row.to_vec()));
        out.push('\n');
    }
    out
}

/// A Markdown table, for a pull request or a job summary.
pub fn markdown(lines: &[Line]) -> String {
    let escape = |c: &str| c.replace('|', "\\|");
    let mut out = format!("| {} |\n|{}\n", HEADERS.join(" | "), "---|".repeat(HEADERS.len()));
    for line in lines {
        out.push_str(&format!("| {} |\n", cells(line).iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(policy: &str, error: &str, resolution: Resolution, verdict: Option<(Verdict, i64)>) -> ReportRow {
        ReportRow {
            incident: format!("{policy}-{error}"),
            policy: Some(policy.into()),
            error: Some(error.into()),
            resolution: Some(resolution),
            failed_at: 1000,
            completed_at: 1010,
            verdict: verdict.map(|v| v.0),
            verified_at: verdict.map(|v| 1000 + v.1),
            ..ReportRow::default()
        }
    }

    #[test]
    fn lines_count_outcomes_verdicts_guards_and_time_to_heal_per_policy_and_error() {
        let mut rows: Vec<ReportRow> = (1..=10)
            .map(|i| {
                row(
                    "redrive",
                    "Lambda.TooManyRequestsException",
                    Resolution::Remediated,
                    Some((Verdict::Healed, i * 60)),
                )
            })
            .collect();
        rows.push(row(
            "redrive",
            "Lambda.TooManyRequestsException",
            Resolution::Remediated,
            Some((Verdict::StillFailing, 5)),
        ));
        rows.push(ReportRow {
            refusals: vec!["attempts-exhausted".into()],
            ..row("redrive", "Lambda.TooManyRequestsException", Resolution::Refused, None)
        });
        rows.push(row("auth", "HTTPError", Resolution::Notified, None));
        rows.push(ReportRow { policy: None, ..row("x", "States.Runtime", Resolution::NoPolicy, None) });
        let lines = lines(&rows);
        assert_eq!(lines.len(), 3);
        let redrive = &lines[0];
        assert_eq!((redrive.policy.as_str(), redrive.incidents), ("redrive", 12));
        assert_eq!((redrive.remediated, redrive.healed, redrive.still_failing), (11, 10, 1));
        assert_eq!(redrive.refused.get("attempts-exhausted"), Some(&1));
        assert_eq!((redrive.median_seconds_to_heal, redrive.p90_seconds_to_heal), (Some(300), Some(540)));
        assert_eq!((lines[1].policy.as_str(), lines[1].escalated), ("-", 1), "no policy: escalated");
        assert_eq!((lines[2].policy.as_str(), lines[2].escalated), ("auth", 1));
        let text = table(&lines);
        assert!(
            text.lines().nth(1).unwrap().starts_with("redrive  Lambda.TooManyRequestsException  -         12"),
            "{text}"
        );
        assert!(text.contains("attempts-exhausted:1"), "{text}");
        assert!(text.contains("5m"), "median 300 s: {text}");
        let md = markdown(&lines);
        assert!(md.starts_with("| POLICY | ERROR |"), "{md}");
        assert_eq!(md.lines().count(), 2 + lines.len());
    }

    #[test]
    fn a_line_names_its_accounts_a_few_by_id_and_many_by_count() {
        let in_account = |account: &str| ReportRow {
            account: Some(account.into()),
            ..row("redrive", "States.TaskFailed", Resolution::Remediated, None)
        };
        let two = lines(&[in_account("111111111111"), in_account("222222222222"), in_account("111111111111")]);
        assert_eq!(two[0].accounts, ["111111111111", "222222222222"]);
        assert_eq!(accounts(&two[0]), "111111111111,222222222222");
        let many: Vec<ReportRow> = (0..5).map(|i| in_account(&format!("{i:012}"))).collect();
        assert_eq!(accounts(&lines(&many)[0]), "5 accounts");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 90), Some(4));
    }
}
