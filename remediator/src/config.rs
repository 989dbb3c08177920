//! Configuration from the environment, validated once at start.
//!
//! Every problem is reported at once with the variable's name and what is expected, so
//! a deployment that is wrong fails at init with one readable message instead of at the
//! first incident.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::accounts::Members;
use crate::guard::{allow_list, AllowList};

/// The member role's name when `REMEDIATOR_MEMBER_ROLE` is not set.
pub const DEFAULT_MEMBER_ROLE: &str = "remediator-member";
use crate::policy::{parse_duration, PolicyErrors, PolicySet};

/// Where policies come from.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySource {
    /// The `policies/` directory bundled into the binary at build time.
    Bundled,
    Path(PathBuf),
}

/// remediator's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub table: String,
    pub topic_arn: String,
    pub policies: PolicySource,
    pub dry_run: bool,
    /// How long a CLI run's claims hold before another delivery may take over (the
    /// Lambda's claims last until its invocation's deadline plus a margin instead).
    pub lease: Duration,
    /// The role remediator runs as: its CloudTrail calls are recognised by it.
    pub role_arn: Option<String>,
    /// The member accounts of an organization remediator acts in (`REMEDIATOR_MEMBER_ACCOUNTS`).
    pub members: Members,
    /// The role it assumes there (`REMEDIATOR_MEMBER_ROLE`, default `remediator-member`).
    pub member_role: String,
    /// The external id the member role requires (`REMEDIATOR_EXTERNAL_ID`), if any.
    pub external_id: Option<String>,
    /// ARN patterns remediator may act on.
    pub allow: AllowList,
    /// remediator's own function ARN and the role EventBridge Scheduler assumes to
    /// invoke it: the durable timer for retries due later than an invocation waits.
    pub timer: Option<(String, String)>,
    /// Storm control: later summaries of one policy and target within this window fold
    /// into one digest (zero: every summary on its own).
    pub digest_window: Duration,
    /// The Secrets Manager secret (ARN or name) holding the key approval links are signed
    /// with (`REMEDIATOR_APPROVAL_SECRET`); without it, summaries carry no link.
    pub approval_secret: Option<String>,
    /// The base of approval links (`REMEDIATOR_APPROVAL_URL`); in Lambda, without it, the
    /// function's own URL is looked up.
    pub approval_url: Option<String>,
}

/// Every problem with the environment.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// Parses a boolean setting: 1/0, true/false, yes/no, on/off (empty is false).
pub fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Some(false),
        "1" | "true" | "yes" | "on" => Some(true),
        _ => None,
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigErrors> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    /// Only the state table's name: what the read-only commands (`report`) need, so that
    /// a reader (the policy pull-request workflow) needs no topic or other setting.
    pub fn table_from_env() -> Result<String, String> {
        table_name(&|k: &str| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let table = table_name(&get).unwrap_or_else(|e| {
            errors.push(e);
            String::new()
        });
        let topic_arn = get("REMEDIATOR_TOPIC_ARN").unwrap_or_default();
        let parts: Vec<&str> = topic_arn.split(':').collect();
        if topic_arn.is_empty() {
            errors.push("REMEDIATOR_TOPIC_ARN is not set: give the ARN of the SNS topic for summaries".into());
        } else if !(parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "sns"
            && parts[3..].iter().all(|p| !p.is_empty()))
        {
            errors.push(format!(
                "REMEDIATOR_TOPIC_ARN `{topic_arn}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
            ));
        }
        let policies = match get("REMEDIATOR_POLICIES").filter(|p| !p.is_empty()) {
            None => PolicySource::Bundled,
            Some(p) => {
                let path = PathBuf::from(&p);
                if !path.exists() {
                    errors.push(format!("REMEDIATOR_POLICIES `{p}` does not exist (a policy directory or file)"));
                }
                PolicySource::Path(path)
            }
        };
        let dry_run = match get("REMEDIATOR_DRY_RUN") {
            None => false,
            Some(v) => parse_flag(&v).unwrap_or_else(|| {
                errors.push(format!("REMEDIATOR_DRY_RUN `{v}` is not a flag (1/0, true/false, yes/no, on/off)"));
                false
            }),
        };
        let role_arn = get("REMEDIATOR_ROLE_ARN").filter(|r| !r.trim().is_empty());
        if let Some(role) = &role_arn {
            let is_role = role.starts_with("arn:aws") && role.contains(":iam::") && role.contains(":role/");
            if !is_role {
                errors.push(format!(
                    "REMEDIATOR_ROLE_ARN: `{role}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
                ));
            }
        }
        let lease = match get("REMEDIATOR_LEASE") {
            None => Duration::from_secs(900),
            Some(v) => parse_duration(&v).unwrap_or_else(|e| {
                errors.push(format!("REMEDIATOR_LEASE: {e} (e.g. 15m)"));
                Duration::from_secs(900)
            }),
        };
        let allow = allow_list(&get, &mut errors);
        let timer = match (
            get("REMEDIATOR_SELF_ARN").filter(|v| !v.is_empty()),
            get("REMEDIATOR_SCHEDULER_ROLE_ARN").filter(|v| !v.is_empty()),
        ) {
            (Some(target), Some(role)) => {
                if !target.starts_with("arn:") || !target.contains(":lambda:") {
                    errors.push(format!("REMEDIATOR_SELF_ARN `{target}` is not a Lambda function ARN"));
                }
                if !role.starts_with("arn:") || !role.contains(":iam:") {
                    errors.push(format!("REMEDIATOR_SCHEDULER_ROLE_ARN `{role}` is not an IAM role ARN"));
                }
                Some((target, role))
            }
            (None, None) => None,
            _ => {
                errors.push(
                    "REMEDIATOR_SELF_ARN and REMEDIATOR_SCHEDULER_ROLE_ARN go together (the durable timer needs both)"
                        .into(),
                );
                None
            }
        };
        let members = Members::parse(&get("REMEDIATOR_MEMBER_ACCOUNTS").unwrap_or_default()).unwrap_or_else(|e| {
            errors.push(format!("REMEDIATOR_MEMBER_ACCOUNTS: {e} (a comma-separated list, or * for any account whose member role trusts remediator)"));
            Members::None
        });
        if !members.is_none() && role_arn.is_none() {
            errors.push(
                "REMEDIATOR_MEMBER_ACCOUNTS needs REMEDIATOR_ROLE_ARN: remediator's own role names its account, which is never reached through a member role"
                    .into(),
            );
        }
        let member_role = get("REMEDIATOR_MEMBER_ROLE")
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_MEMBER_ROLE.into());
        if !member_role.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) || member_role.len() > 64
        {
            errors.push(format!("REMEDIATOR_MEMBER_ROLE `{member_role}` is not an IAM role name"));
        }
        let external_id = get("REMEDIATOR_EXTERNAL_ID").filter(|v| !v.is_empty());
        let digest_window = match get("REMEDIATOR_DIGEST_WINDOW") {
            None => Duration::from_secs(300),
            Some(v) => parse_duration(&v).unwrap_or_else(|e| {
                errors.push(format!("REMEDIATOR_DIGEST_WINDOW: {e} (e.g. 5m, or 0s for no digests)"));
                Duration::from_secs(300)
            }),
        };
        let approval_secret = get("REMEDIATOR_APPROVAL_SECRET").filter(|v| !v.trim().is_empty());
        let approval_url = get("REMEDIATOR_APPROVAL_URL").filter(|v| !v.trim().is_empty());
        if let Some(url) = &approval_url {
            if !url.starts_with("https://")
                && !url.starts_with("http://127.0.0.1")
                && !url.starts_with("http://localhost")
            {
                errors.push(format!("REMEDIATOR_APPROVAL_URL `{url}` must be an https:// URL"));
            }
        }
        if errors.is_empty() {
            Ok(Config {
                approval_secret,
                approval_url,
                table,
                topic_arn,
                policies,
                dry_run,
                lease,
                role_arn,
                allow,
                timer,
                digest_window,
                members,
                member_role,
                external_id,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/bundled_policies.rs"));

impl PolicySource {
    pub fn load(&self) -> Result<PolicySet, PolicyErrors> {
        match self {
            PolicySource::Bundled => PolicySet::from_sources(&bundled_sources()),
            PolicySource::Path(p) => PolicySet::load(p),
        }
    }
}

/// The bundled policy files as (name, text).
pub fn bundled_sources() -> Vec<(String, String)> {
    BUNDLED_POLICIES.iter().map(|(n, t)| (format!("<bundled>/{n}"), t.to_string())).collect()
}

/// `REMEDIATOR_TABLE`, checked against DynamoDB's naming rules.
fn table_name(get: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let table = get("REMEDIATOR_TABLE").unwrap_or_default();
    let table_ok = (3..=255).contains(&table.len())
        && table.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if table.is_empty() {
        Err("REMEDIATOR_TABLE is not set: name the DynamoDB table that records incidents".into())
    } else if !table_ok {
        Err(format!("REMEDIATOR_TABLE `{table}` is not a DynamoDB table name (3-255 of a-z, A-Z, 0-9, _ - .)"))
    } else {
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = config(&[("REMEDIATOR_DRY_RUN", "maybe"), ("REMEDIATOR_TOPIC_ARN", "topic")]).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        let text = err.to_string();
        assert!(text.contains("REMEDIATOR_TABLE is not set"));
        assert!(text.contains("`topic` is not an SNS topic ARN"));
        assert!(text.contains("REMEDIATOR_DRY_RUN `maybe`"));
    }

    #[test]
    fn a_valid_environment_uses_the_bundled_policies_by_default() {
        let c = config(&[
            ("REMEDIATOR_TABLE", "remediator-state"),
            ("REMEDIATOR_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:remediator"),
            ("REMEDIATOR_DRY_RUN", "yes"),
        ])
        .unwrap();
        assert_eq!(c.policies, PolicySource::Bundled);
        assert!(c.dry_run);
    }

    const VALID: &[(&str, &str)] = &[
        ("REMEDIATOR_TABLE", "remediator-state"),
        ("REMEDIATOR_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:remediator"),
    ];

    #[test]
    fn naming_the_data_buckets_narrows_the_default_allow_list_to_them() {
        let function = "arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-pull";
        let object = |bucket: &str| format!("arn:aws:s3:::{bucket}/thera-pipeline/raw/2026/x.json");
        // Unset: objects under `thera-pipeline/` in any bucket.
        let c = config(VALID).unwrap();
        assert!(c.allow.allows(function) && c.allow.allows(&object("elsewhere")));
        assert!(!c.allow.allows("arn:aws:s3:::elsewhere/x/thera-pipeline/y"));
        let mut vars = VALID.to_vec();
        vars.push(("REMEDIATOR_DATA_BUCKETS", " thera-data , thera.archive,thera-data"));
        let c = config(&vars).unwrap();
        assert!(c.allow.allows(function));
        assert!(c.allow.allows(&object("thera-data")) && c.allow.allows(&object("thera.archive")));
        assert!(!c.allow.allows(&object("elsewhere")));
        assert!(!c.allow.allows("arn:aws:s3:::thera-data/other/x.json"));
        assert_eq!(c.allow.patterns().filter(|p| p.contains(":s3:")).count(), 2);
        // An explicit allow-list is taken as it is.
        vars.push(("REMEDIATOR_ALLOW", "arn:aws:s3:::elsewhere/*"));
        let c = config(&vars).unwrap();
        assert!(c.allow.allows(&object("elsewhere")) && !c.allow.allows(function));
    }

    #[test]
    fn every_data_bucket_that_is_not_an_s3_bucket_name_is_reported() {
        let mut vars = VALID.to_vec();
        let bad = ["Thera_Data", "ab", "192.168.5.4", "xn--thera", "thera..data", "-thera", "thera-s3alias", "a*"];
        let text = format!("thera-data,{}", bad.join(","));
        vars.push(("REMEDIATOR_DATA_BUCKETS", &text));
        vars.push(("REMEDIATOR_DRY_RUN", "maybe"));
        let err = config(&vars).unwrap_err();
        assert_eq!(err.0.len(), bad.len() + 1, "{err}");
        for name in bad {
            assert!(err
                .0
                .iter()
                .any(|e| e.starts_with("REMEDIATOR_DATA_BUCKETS: `") && e.contains(&format!("`{name}`"))));
        }
        assert!(!err.to_string().contains("`thera-data`"));
        for good in ["thera-pipeline-data", "my.bucket.1", "abc"] {
            assert_eq!(crate::guard::check_bucket_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn the_bundled_policies_load() {
        let set = PolicySource::Bundled.load().unwrap();
        assert!(!set.policies().is_empty());
    }
}
