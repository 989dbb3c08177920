//! Which account an incident is handled in, and with whose credentials.
//!
//! One central deployment may act for the member accounts of an organization: their
//! events arrive on the central bus with their own `account`, and a change to a target
//! in a member account is made with the member role's credentials, never the central
//! account's. This module is the pure decision: the event's account, the account
//! remediator runs in (its home) and the member accounts it is configured for give a
//! [`Reach`]. A target in an account that is neither is refused.

/// The member accounts remediator may act in (`REMEDIATOR_MEMBER_ACCOUNTS`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Members {
    /// Only the home account (the default).
    #[default]
    None,
    /// These accounts (12 digits each).
    Listed(Vec<String>),
    /// Any account in which the member role can be assumed (`*`): the organization's
    /// trust decides.
    Any,
}

impl Members {
    /// Reads `""`, `*` or a comma-separated list of 12-digit account ids.
    pub fn parse(text: &str) -> Result<Members, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Members::None);
        }
        if text == "*" {
            return Ok(Members::Any);
        }
        let mut ids = Vec::new();
        for id in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if !is_account_id(id) {
                return Err(format!("`{id}` is not an AWS account id (12 digits)"));
            }
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
        Ok(if ids.is_empty() { Members::None } else { Members::Listed(ids) })
    }

    pub fn includes(&self, account: &str) -> bool {
        match self {
            Members::None => false,
            Members::Listed(ids) => ids.iter().any(|i| i == account),
            Members::Any => is_account_id(account),
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Members::None
    }
}

/// Whether `id` is 12 digits.
pub fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Where an incident is handled.
#[derive(Clone, Debug, PartialEq)]
pub enum Reach {
    /// With remediator's own credentials.
    Home,
    /// With the member role of this account.
    Member(String),
    /// Not at all: why.
    Refused(String),
}

/// Where an incident from `event_account` is handled. `home` is the account remediator
/// runs in (from its own role's ARN, else from STS). An event from another account is
/// handled only in a member account, with the member role; when the home is not known,
/// nothing an account names is acted on.
pub fn reach(event_account: Option<&str>, home: Option<&str>, members: &Members) -> Reach {
    let account = match event_account.map(str::trim).filter(|a| !a.is_empty()) {
        None => return Reach::Home,
        Some(a) => a,
    };
    if home == Some(account) {
        return Reach::Home;
    }
    if members.includes(account) {
        return Reach::Member(account.to_string());
    }
    match home {
        // Not knowing its own account, remediator cannot tell whose resource a name
        // reaches: it acts on nothing an account names.
        None => Reach::Refused(format!(
            "remediator's own account is not known (REMEDIATOR_ROLE_ARN unset, and STS did not say): an event from account {account} is not acted on"
        )),
        Some(home) => Reach::Refused(format!(
            "account {account} is neither remediator's own ({home}) nor a member account it acts in (REMEDIATOR_MEMBER_ACCOUNTS)"
        )),
    }
}

/// The member role's ARN in `account`, in the partition of remediator's own role.
pub fn member_role_arn(account: &str, role_name: &str, home_role_arn: Option<&str>) -> String {
    let partition = home_role_arn.and_then(|r| r.split(':').nth(1)).filter(|p| !p.is_empty()).unwrap_or("aws");
    format!("arn:{partition}:iam::{account}:role/{role_name}")
}

/// The account of a role ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
pub fn account_of_role(role_arn: &str) -> Option<&str> {
    let account = role_arn.split(':').nth(4)?;
    is_account_id(account).then_some(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "123456789012";
    const MEMBER: &str = "111122223333";

    #[test]
    fn members_are_read_and_checked() {
        assert_eq!(Members::parse("").unwrap(), Members::None);
        assert_eq!(Members::parse(" * ").unwrap(), Members::Any);
        assert_eq!(
            Members::parse("111122223333, 444455556666,111122223333").unwrap(),
            Members::Listed(vec![MEMBER.into(), "444455556666".into()])
        );
        assert_eq!(
            Members::parse("1111-2222-3333").unwrap_err(),
            "`1111-2222-3333` is not an AWS account id (12 digits)"
        );
        assert!(!Members::Any.includes("not-an-account"));
    }

    #[test]
    fn an_event_is_handled_at_home_in_a_member_account_or_not_at_all() {
        let members = Members::Listed(vec![MEMBER.into()]);
        assert_eq!(reach(Some(HOME), Some(HOME), &members), Reach::Home);
        assert_eq!(reach(None, Some(HOME), &members), Reach::Home);
        assert_eq!(reach(Some(MEMBER), Some(HOME), &members), Reach::Member(MEMBER.into()));
        match reach(Some("999999999999"), Some(HOME), &members) {
            Reach::Refused(why) => {
                assert!(why.contains("999999999999") && why.contains("REMEDIATOR_MEMBER_ACCOUNTS"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // Its own account not known: nothing an account names is acted on.
        assert!(matches!(reach(Some("999999999999"), None, &Members::None), Reach::Refused(_)));
        assert_eq!(reach(None, None, &Members::None), Reach::Home, "an event that names no account");
        // With its role known, another account is never acted on with its credentials.
        assert!(matches!(reach(Some("999999999999"), Some(HOME), &Members::None), Reach::Refused(_)));
        assert_eq!(reach(Some("999999999999"), Some(HOME), &Members::Any), Reach::Member("999999999999".into()));
    }

    #[test]
    fn the_member_role_is_named_in_the_member_account_and_the_home_partition() {
        assert_eq!(
            member_role_arn(MEMBER, "remediator-member", None),
            "arn:aws:iam::111122223333:role/remediator-member"
        );
        assert_eq!(
            member_role_arn(MEMBER, "remediator-member", Some("arn:aws-cn:iam::123456789012:role/r")),
            "arn:aws-cn:iam::111122223333:role/remediator-member"
        );
        assert_eq!(account_of_role("arn:aws:iam::123456789012:role/remediator"), Some(HOME));
        assert_eq!(account_of_role("remediator"), None);
    }
}
