//! Redaction of secrets and personal data in text that leaves remediator.
//!
//! Execution input and output are never read into logs, records or summaries at all;
//! what remains is error causes and messages written by code we do not control, which
//! sometimes quote an API key, a bearer token or an e-mail address. Everything that
//! reaches a person or a table passes through [`text`] first.

const MASK: &str = "[REDACTED]";
const SECRET_WORDS: &[&str] = &[
    "apikey",
    "api_key",
    "api-key",
    "x-api-key",
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "credential",
    "bearer",
];

/// Masks secrets (`api_key=...`, `"token": "..."`, `Bearer ...`, long opaque tokens)
/// and e-mail addresses.
pub fn text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while !rest.is_empty() {
        // Split off the next word (a run of token characters) and what precedes it.
        let start = rest.find(is_token_char).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if word.contains('@') && word.contains('.') && !word.starts_with('@') {
            out.push_str("[EMAIL]");
        } else if looks_like_secret(word) {
            out.push_str(MASK);
        } else {
            out.push_str(word);
            if names_a_secret(word) {
                // Mask the value that follows `word` after a separator such as
                // `=`, `: `, `":"`, or a space (for `Bearer xyz`).
                let sep_len =
                    rest.find(|c: char| !matches!(c, ' ' | '=' | ':' | '"' | '\'' | '\t')).unwrap_or(rest.len());
                let sep = &rest[..sep_len];
                if !sep.is_empty() && sep.len() <= 6 {
                    out.push_str(sep);
                    rest = &rest[sep_len..];
                    let value_end = rest.find(['"', '\'', ',', '}', ' ', '\n', ';', '&']).unwrap_or(rest.len());
                    if value_end > 0 {
                        let value = &rest[..value_end];
                        out.push_str(MASK);
                        rest = &rest[value_end..];
                        // `Authorization: Bearer xyz`: the scheme is followed by the secret.
                        if value.eq_ignore_ascii_case("bearer") || value.eq_ignore_ascii_case("basic") {
                            let trimmed = rest.trim_start_matches(' ');
                            let next_end = trimmed.find(['"', '\'', ',', '}', ' ', '\n', ';']).unwrap_or(trimmed.len());
                            rest = &trimmed[next_end..];
                        }
                    }
                }
            }
        }
    }
    out
}

/// Truncates to at most `max` characters (on a character boundary), marking the cut.
pub fn truncate(input: &str, max: usize) -> String {
    if input.chars().count() <= max {
        return input.to_string();
    }
    let mut s: String = input.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '.' | '@')
}

fn names_a_secret(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    let lower = lower.trim_end_matches(['=', '.']);
    SECRET_WORDS.iter().any(|w| lower == *w || lower.ends_with(&format!("_{w}")) || lower.ends_with(&format!("-{w}")))
}

/// A long run of mixed letters and digits that is not a UUID, an ARN part or a path.
fn looks_like_secret(word: &str) -> bool {
    let word = word.trim_end_matches('.');
    if word.len() < 24 || is_uuid(word) || word.contains('/') && word.matches('/').count() > 2 {
        return false;
    }
    let letters = word.chars().filter(char::is_ascii_alphabetic).count();
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let upper = word.chars().filter(char::is_ascii_uppercase).count();
    // Names like `thera-pipeline-prod-apollo-delta-pull` are long but mostly
    // lower-case words with dashes; keys mix cases and digits densely.
    let separators = word.chars().filter(|c| matches!(c, '-' | '_' | '.')).count();
    digits >= 3 && letters >= 6 && (upper >= 2 || separators * 8 < word.len())
}

fn is_uuid(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_secrets_are_masked() {
        assert_eq!(text("apollo api_key=sk_live_abc failed"), "apollo api_key=[REDACTED] failed");
        assert_eq!(text(r#"{"api_key": "abc123", "n": 1}"#), r#"{"api_key": "[REDACTED]", "n": 1}"#);
        assert_eq!(text("Authorization: Bearer eyJhbGciOi rest"), "Authorization: [REDACTED] rest");
        assert_eq!(text("sent Bearer eyJhbGciOi"), "sent Bearer [REDACTED]");
        assert_eq!(text("password=hunter2;"), "password=[REDACTED];");
    }

    #[test]
    fn opaque_tokens_and_emails_are_masked_but_names_and_ids_stay() {
        assert_eq!(text("key fc-9f8e7d6c5b4a39281706AbCdEf was rejected"), "key [REDACTED] was rejected");
        assert_eq!(text("user maria.silva@example.com.br not found"), "user [EMAIL] not found");
        let keep = "Function thera-pipeline-prod-apollo-delta-pull, Request ID: 2f5b0a1e-0d4b-4a6f-9f0e-3c1d2b3a4e5f";
        assert_eq!(text(keep), keep);
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-apollo-delta-pull";
        assert_eq!(text(arn), arn);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ação", 3), "aç…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
