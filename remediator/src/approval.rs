//! Human approval with expiry: the request, its two ways to be answered, and the link.
//!
//! A policy with `approval` gets its plan made, guarded and previewed (a dry run that
//! reads each target as it is now), and recorded as *awaiting approval* with a digest of
//! that preview ([`crate::policy`]'s `plan_digest`). A person answers with `remediator
//! approve|reject INCIDENT` (their IAM identity checked against the policy's approvers
//! and recorded) or with the summary's link, when the policy says `anyone-with-link`.
//!
//! The link carries a token: the incident, the digest and the expiry, signed with
//! HMAC-SHA256 under a key the deployment keeps in Secrets Manager (never in the template
//! or the environment). Opening the link shows what will be done and asks to confirm: a
//! `GET` never answers (mail scanners and chat previews open links), a `POST` does. The
//! token is single use because the answer is a conditional write on the request's state:
//! whatever arrives second finds it answered.
//!
//! On approval everything is checked again at that moment: the pauses, the guards, the
//! account rules, and the plan itself, previewed again and compared by digest, so a
//! target that changed since the request is refused, not acted on. On expiry nothing is
//! done (default deny), recorded and told; on rejection likewise, with the reason.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::apply::StepOutcome;
use crate::incident::IncidentKey;
use crate::summary::Summary;

pub use remediator_policy::approval::{plan_digest, Approval, Approvers, PlannedChange};

/// Where a request for approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalState {
    Awaiting,
    Approved,
    Rejected,
    Expired,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Awaiting => "awaiting",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Expired => "expired",
        }
    }
}

/// A request for approval, as recorded with the incident's completion.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRequest {
    pub policy: String,
    /// The digest of the previewed plan the approval is for.
    pub digest: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Who may answer, as the policy said (for people reading the record).
    pub approvers: String,
}

/// A decision on a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Approve,
    Reject {
        reason: String,
    },
    /// The request's time ran out (the sweep, or an answer that came too late).
    Expire,
}

impl Decision {
    pub fn state(&self) -> ApprovalState {
        match self {
            Decision::Approve => ApprovalState::Approved,
            Decision::Reject { .. } => ApprovalState::Rejected,
            Decision::Expire => ApprovalState::Expired,
        }
    }
}

/// How an answer arrived, and what proves who gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Via {
    /// `remediator approve|reject`: the caller's ARN, from STS `GetCallerIdentity`.
    Cli { caller: String },
    /// The function URL: a verified token, and the signed caller when the request was
    /// signed with SigV4 (a function URL with IAM auth), else where it came from.
    Link { token: Token, caller: Option<String>, from: String },
    /// remediator itself (an expiry).
    Remediator,
}

/// One answer to a request for approval.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub incident: IncidentKey,
    pub decision: Decision,
    pub via: Via,
}

impl Answer {
    /// Who answered, as recorded and told.
    pub fn by(&self) -> String {
        match &self.via {
            Via::Cli { caller } => caller.clone(),
            Via::Link { caller: Some(caller), .. } => format!("{caller} (with the link)"),
            Via::Link { caller: None, from, .. } => format!("anyone with the link (from {from})"),
            Via::Remediator => "remediator (no answer in time)".into(),
        }
    }
}

/// The `detail-type` of the internal event that carries an approved plan to its
/// handling (kept with its claim, so a handling that dies is taken over by the sweep).
pub const APPROVAL_GRANTED: &str = remediator_policy::triage::APPROVAL_GRANTED;

/// The internal event of an approved request: all it says is which incident (and, for
/// people reading `history`, its account); what was approved, by whom, and whether it
/// still stands is read from the state table.
pub fn granted_event(incident: &IncidentKey, account: Option<&str>, at: i64) -> Value {
    json!({
        "version": "0",
        "id": format!("approval:{incident}"),
        "detail-type": APPROVAL_GRANTED,
        "source": crate::triage::OWN_SOURCE,
        "account": account.unwrap_or_default(),
        "time": crate::guard::format_time(at),
        "resources": [],
        "detail": {"incident": incident.as_str()},
    })
}

/// The signing key of links, from the deployment's secret.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey([redacted])")
    }
}

/// The links of approval summaries: the function URL and the key tokens are signed with.
#[derive(Clone, Debug)]
pub struct Links {
    pub url: String,
    pub key: LinkKey,
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub incident: IncidentKey,
    pub digest: String,
    pub expires_at: i64,
}

/// Why a token is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("the link is damaged or incomplete")]
    Malformed,
    #[error("the link's signature does not verify: it was not made by this remediator, or was changed")]
    Forged,
}

const TOKEN_VERSION: &str = "v1";

impl LinkKey {
    /// A key from the secret's text (at least 32 bytes: the template generates 64).
    pub fn new(secret: &str) -> Result<LinkKey, String> {
        let bytes = secret.trim().as_bytes().to_vec();
        if bytes.len() < 32 {
            return Err(format!("the approval key is {} bytes: at least 32 are needed", bytes.len()));
        }
        Ok(LinkKey(bytes))
    }

    fn mac(&self, payload: &str) -> Hmac<sha2_11::Sha256> {
        let mut mac =
            <Hmac<sha2_11::Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    /// The token of a request: `v1.INCIDENT.DIGEST.EXPIRES.MAC`, URL-safe.
    pub fn sign(&self, incident: &IncidentKey, digest: &str, expires_at: i64) -> String {
        let payload =
            format!("{TOKEN_VERSION}.{}.{digest}.{expires_at}", URL_SAFE_NO_PAD.encode(incident.as_str().as_bytes()));
        let mac = self.mac(&payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The token's claims, if its signature verifies (in constant time).
    pub fn verify(&self, token: &str) -> Result<Token, TokenError> {
        let (payload, mac) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| TokenError::Malformed)?;
        self.mac(payload).verify_slice(&mac).map_err(|_| TokenError::Forged)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let [TOKEN_VERSION, incident, digest, expires_at] = parts.as_slice() else {
            return Err(TokenError::Malformed);
        };
        let incident = URL_SAFE_NO_PAD.decode(incident).map_err(|_| TokenError::Malformed)?;
        let incident = String::from_utf8(incident).map_err(|_| TokenError::Malformed)?;
        Ok(Token {
            incident: IncidentKey::from_stored(incident),
            digest: digest.to_string(),
            expires_at: expires_at.parse().map_err(|_| TokenError::Malformed)?,
        })
    }
}

impl Links {
    /// The link of a request.
    pub fn link(&self, incident: &IncidentKey, digest: &str, expires_at: i64) -> String {
        let base = self.url.trim_end_matches('/');
        format!("{base}/?token={}", self.key.sign(incident, digest, expires_at))
    }
}

/// A previewed plan as approval compares it: each step with its action's parameters.
fn changes<'a>(plan: &'a crate::plan::Plan, steps: &'a [StepOutcome]) -> Vec<PlannedChange<'a>> {
    plan.steps
        .iter()
        .zip(steps)
        .map(|(step, s)| PlannedChange {
            policy: &s.policy,
            action: s.action,
            parameters: format!("{:?}", step.action),
            target: s.target.as_deref(),
            result: s.result.as_str(),
            detail: &s.detail,
            before: s.before.as_ref().map(Value::to_string),
        })
        .collect()
}

/// The digest of a previewed plan (`plan` and the outcomes of its dry run).
pub fn digest_of(incident: &IncidentKey, plan: &crate::plan::Plan, steps: &[StepOutcome]) -> String {
    plan_digest(incident.as_str(), &changes(plan, steps))
}

/// Whether the plan previewed now is the one approved (see `same_plan`); `resumed` when
/// an earlier handling of this approval died half-way.
pub fn agrees(
    approved: &str,
    incident: &IncidentKey,
    plan: &crate::plan::Plan,
    steps: &[StepOutcome],
    resumed: bool,
) -> Result<(), String> {
    remediator_policy::approval::same_plan(approved, incident.as_str(), &changes(plan, steps), resumed)
}

/// Longest reason recorded with a rejection.
pub const MAX_REASON: usize = 1000;

/// The summary of an answer that does nothing (a rejection, an expiry).
pub fn answered_summary(incident: &IncidentKey, policy: &str, answer: &Answer, target: Option<&str>) -> Summary {
    let (word, lead) = match &answer.decision {
        Decision::Reject { .. } => {
            ("rejected", "A person rejected the change remediator asked to make: nothing was done.")
        }
        Decision::Expire => {
            ("expired", "No one approved the change remediator asked to make in time: nothing was done.")
        }
        Decision::Approve => ("approved", "The change was approved."),
    };
    let about = target.map(crate::summary::short_name).unwrap_or_else(|| incident.to_string());
    let subject = crate::summary::clean_subject(&format!("[approval {word}] {policy}: {about}"));
    let mut body = format!("{lead}\n\n");
    let mut line = |k: &str, v: &str| body.push_str(&format!("  {k:<14} {v}\n"));
    line("Policy:", policy);
    if let Some(t) = target {
        line("Target:", t);
    }
    line("Answer:", word);
    line("By:", &answer.by());
    if let Decision::Reject { reason } = &answer.decision {
        line("Reason:", &crate::redact::text(reason));
    }
    line("Incident:", incident.as_str());
    body.push_str("\nThe failure itself is not healed: a person must look.\n");
    let mut attributes = BTreeMap::new();
    attributes.insert("outcome".to_string(), word.to_string());
    attributes.insert("severity".to_string(), "warning".to_string());
    attributes.insert("policy".to_string(), policy.to_string());
    Summary { subject, body, attributes }
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body).
pub fn form(text: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                    let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Escapes text for HTML.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The function URL's face: a request (payload format 2.0) answered with a page.
///
/// `GET /?token=…` shows the request (what will be done, to what, until when) and a form;
/// `POST` with the form answers it. Nothing but a verified token reaches the table, and a
/// `GET` never changes anything.
pub async fn http(handler: &crate::handle::Handler, request: &Value, inv: &crate::handle::Invocation) -> Value {
    let method = request.pointer("/requestContext/http/method").and_then(Value::as_str).unwrap_or("GET");
    let Some(links) = handler.links.as_deref() else {
        return page(
            503,
            "Approval links are not configured",
            "<p>Answer with <code>remediator approve</code> or <code>remediator reject</code>.</p>",
        );
    };
    let body = request.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if request.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    } else {
        body.to_string()
    };
    let fields = match method {
        "POST" => form(&body),
        _ => form(request.get("rawQueryString").and_then(Value::as_str).unwrap_or_default()),
    };
    let token = match links.key.verify(fields.get("token").map(String::as_str).unwrap_or_default()) {
        Ok(token) => token,
        Err(e) => return page(403, "This link is not valid", &format!("<p>{}</p>", html_escape(&e.to_string()))),
    };
    match method {
        "GET" | "HEAD" => review(handler, &token).await,
        "POST" => {
            let decision = match fields.get("decision").map(String::as_str) {
                Some("approve") => Decision::Approve,
                Some("reject") => Decision::Reject {
                    reason: fields
                        .get("reason")
                        .filter(|r| !r.trim().is_empty())
                        .map(|r| crate::redact::truncate(r, MAX_REASON))
                        .unwrap_or_else(|| "no reason given".into()),
                },
                _ => return page(400, "No decision", "<p>Choose approve or reject.</p>"),
            };
            // The URL's auth type is NONE: a caller named in the request is not proven (a
            // direct invocation can write any `requestContext`), so it is never used.
            let caller = None;
            let from = request
                .pointer("/requestContext/http/sourceIp")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            let answer = Answer { incident: token.incident.clone(), decision, via: Via::Link { token, caller, from } };
            match handler.answer(answer, inv).await {
                Ok(outcome) => {
                    let note = outcome.note.as_deref().unwrap_or_default();
                    let status = if outcome.resolution == crate::outcome::Resolution::Refused { 409 } else { 200 };
                    let title = match outcome.resolution {
                        crate::outcome::Resolution::Refused => "Nothing was done".to_string(),
                        other => format!("Done: {}", other.as_str()),
                    };
                    let mut body = format!("<p>{}</p><ul>", html_escape(&crate::redact::text(note)));
                    for a in &outcome.actions {
                        body.push_str(&format!(
                            "<li><b>{}</b> [{}] {}</li>",
                            html_escape(a.action),
                            a.result.as_str(),
                            html_escape(&crate::redact::text(&a.detail))
                        ));
                    }
                    body.push_str("</ul>");
                    page(status, &title, &body)
                }
                Err(e) => {
                    tracing::error!(error = %crate::redact::text(&e.to_string()), "approval answer not handled");
                    let status = if e.is_retryable() { 503 } else { 500 };
                    page(status, "Not handled", "<p>Your answer may not have been taken. Try again in a minute.</p>")
                }
            }
        }
        _ => page(405, "Method not allowed", "<p>GET to review, POST to answer.</p>"),
    }
}

/// The review page of a request: what will be done, and the form.
async fn review(handler: &crate::handle::Handler, token: &Token) -> Value {
    let record = match handler.log.record(&token.incident).await {
        Ok(Some(record)) => record,
        Ok(None) => return page(404, "No such incident", ""),
        Err(e) => {
            tracing::error!(error = %crate::redact::text(&e.to_string()), "approval review: the state table could not be read");
            return page(503, "The state table could not be read", "<p>Try again in a minute.</p>");
        }
    };
    let state = record.approval_state.unwrap_or(ApprovalState::Expired);
    if record.approval_digest.as_deref() != Some(token.digest.as_str()) {
        return page(
            409,
            "This link is for another plan",
            "<p>The incident's request changed since this link was made.</p>",
        );
    }
    let mut steps = String::new();
    for s in record.steps() {
        steps.push_str(&format!(
            "<li><b>{}</b> on <code>{}</code>: {}</li>",
            html_escape(&s.action),
            html_escape(s.target.as_deref().unwrap_or("-")),
            html_escape(&crate::redact::text(&s.detail))
        ));
    }
    let when = crate::guard::format_time(record.approval_expires_at.unwrap_or(token.expires_at));
    let policy = html_escape(record.approval_policy.as_deref().unwrap_or("-"));
    let incident = html_escape(token.incident.as_str());
    if state != ApprovalState::Awaiting {
        let by = html_escape(record.approval_by.as_deref().unwrap_or("-"));
        return page(
            409,
            &format!("Already {}", state.as_str()),
            &format!("<p>Incident <code>{incident}</code> was {} by {by}.</p><ul>{steps}</ul>", state.as_str()),
        );
    }
    let token_text = html_escape(
        &handler
            .links
            .as_ref()
            .map(|l| l.key.sign(&token.incident, &token.digest, token.expires_at))
            .unwrap_or_default(),
    );
    page(
        200,
        "remediator asks for approval",
        &format!(
            "<p>Policy <b>{policy}</b>, incident <code>{incident}</code>. Open until {when}; then nothing is done.</p>\
             <p>On approval remediator will:</p><ul>{steps}</ul>\
             <p>Everything is checked again when you approve: pauses, limits, and the targets as they are then.</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"token\" value=\"{token_text}\">\
             <p><button name=\"decision\" value=\"approve\">Approve</button></p>\
             <p><input name=\"reason\" placeholder=\"reason for rejecting\" size=\"50\"> \
             <button name=\"decision\" value=\"reject\">Reject</button></p></form>"
        ),
    )
}

/// A function URL response with an HTML page (never cached, never framed, no referrer:
/// the token is in the address).
fn page(status: u16, title: &str, body: &str) -> Value {
    json!({
        "statusCode": status,
        "headers": {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
        },
        "body": format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>{body}</body></html>",
            t = html_escape(title)
        ),
    })
}

/// Whether a Lambda payload is a function URL request (payload format 2.0).
pub fn is_http(payload: &Value) -> bool {
    payload.pointer("/requestContext/http/method").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LinkKey {
        LinkKey::new("0123456789abcdef0123456789abcdef-test-key").unwrap()
    }

    #[test]
    fn a_token_verifies_with_its_key_only_and_any_change_is_forgery() {
        let incident = IncidentKey::from_stored("arn:aws:states:us-east-1:1:execution:sm:run#0");
        let token = key().sign(&incident, "d1g35t", 1_900_000_000);
        assert_eq!(
            key().verify(&token),
            Ok(Token { incident: incident.clone(), digest: "d1g35t".into(), expires_at: 1_900_000_000 })
        );
        let other = LinkKey::new("another-key-another-key-another-key!").unwrap();
        assert_eq!(other.verify(&token), Err(TokenError::Forged));
        // A later expiry, another digest, another incident: each breaks the signature.
        let forged_expiry = token.replace(".1900000000.", ".1999999999.");
        assert_eq!(key().verify(&forged_expiry), Err(TokenError::Forged));
        let forged_digest = token.replace(".d1g35t.", ".d1g35u.");
        assert_eq!(key().verify(&forged_digest), Err(TokenError::Forged));
        assert_eq!(key().verify("v1.abc"), Err(TokenError::Forged));
        assert_eq!(key().verify("nonsense"), Err(TokenError::Malformed));
        assert_eq!(key().verify(&format!("{token}x!")), Err(TokenError::Malformed));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(LinkKey::new("short").is_err());
        assert_eq!(format!("{:?}", key()), "LinkKey([redacted])");
    }

    #[test]
    fn forms_decode_percent_and_plus() {
        let f = form("token=a%2Eb&decision=reject&reason=not+now%2C+the+load+is+high&x");
        assert_eq!(f["token"], "a.b");
        assert_eq!(f["reason"], "not now, the load is high");
        assert_eq!(f["x"], "");
        assert_eq!(form("a=%zz%2")["a"], "%zz%2");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
    }
}
