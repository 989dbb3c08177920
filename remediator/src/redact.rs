//! Redaction of secrets and personal data in text that leaves remediator.
//!
//! Execution input and output are never read into logs, records or summaries at all;
//! what remains is error causes and messages written by code we do not control, which
//! sometimes quote an API key, a bearer token, a connection string or an e-mail
//! address. Everything that reaches a person or a table passes through [`text`] first.
//!
//! # The rules
//!
//! What is masked is the table [`RULES`]: one row per shape of secret, each with a name,
//! a description of what it matches, and an example with its redacted form (a test checks
//! every example, so the table cannot drift from the code). The rules run in table order,
//! each over the output of the one before; a rule that finds nothing costs one scan.
//!
//! The table exists because a redactor is only trusted as far as it can be reviewed:
//! "does it catch X?" should be answerable by reading a row, not by tracing a tokenizer.
//! The order matters and is deliberate:
//!
//! - PEM bodies and URL passwords go first, because their insides look like other
//!   things (base64 runs, `user@host` e-mail look-alikes).
//! - Named values (`api_key=…`, `"accessToken": "…"`, `\"password\": \"…\"`) and
//!   phrases (`Invalid API key: …`) come before the shape-only rules, so the value is
//!   masked whole — including quoted values with spaces and values inside escaped JSON,
//!   where the closing quote carries as many backslashes as the opening one.
//! - Shape-only rules (AWS keys, JWTs, long random runs) are the fallback for secrets
//!   quoted without a name. They are tuned against false positives on what a person
//!   needs to act: UUIDs, hex digests (git SHAs, ETags, trace ids), ARNs, S3 keys, error
//!   types and timestamps are left alone. The price is that an unnamed all-hex key is
//!   not recognised by shape.
//!
//! The mask text contains no character a rule would match, so redaction is idempotent.

use std::ops::Range;

const MASK: &str = "[REDACTED]";
const EMAIL: &str = "[EMAIL]";

/// One kind of secret: how it is found, and what a reviewer should expect.
#[cfg_attr(not(test), expect(dead_code, reason = "name, matches and example are for reviewers and the table test"))]
struct Rule {
    name: &'static str,
    /// What the rule matches, in words.
    matches: &'static str,
    /// An input the rule redacts, and the whole redacted output (checked by a test).
    example: (&'static str, &'static str),
    /// What replaces each match.
    mask: &'static str,
    /// Pushes the byte ranges to replace, in ascending order.
    find: fn(&str, &mut Vec<Range<usize>>),
}

/// The redaction rules, applied in this order.
const RULES: &[Rule] = &[
    Rule {
        name: "pem-block",
        matches: "the body between `-----BEGIN …-----` and `-----END` (to the end of the text when the \
                  block was cut off); works with real newlines and with literal `\\n` escapes",
        example: (
            "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----",
        ),
        mask: MASK,
        find: pem_bodies,
    },
    Rule {
        name: "url-password",
        matches: "the password in `scheme://user:password@host` (postgres, mysql, mongodb+srv, redis, \
                  https, …); scheme, user and host stay so a person can still act",
        example: ("postgres://etl:s3cret@db.internal:5432/crm", "postgres://etl:[REDACTED]@db.internal:5432/crm"),
        mask: MASK,
        find: url_passwords,
    },
    Rule {
        name: "jwt",
        matches: "a JSON Web Token: `eyJ…` `.` `eyJ…` `.` signature (and further parts)",
        example: ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln rejected", "token [REDACTED] rejected"),
        mask: MASK,
        find: jwts,
    },
    Rule {
        name: "named-value",
        matches: "the value assigned with `=` or `:` to a key whose name ends in token, secret, password, \
                  passwd, pwd, passphrase, apikey, accesskey, accesskeyid, secretkey, privatekey, signingkey, \
                  authorization, credential(s), signature, cookie or bearer (case, `_`, `-` and `.` ignored: \
                  accessToken, x-api-key, PGPASSWORD, aws_secret_access_key, X-Amz-Signature), or is exactly \
                  `key` unless the value is an object path such as `raw/2026/x.json`; the key may be quoted, \
                  also with escaped quotes (`\\\"api_key\\\": \\\"…\\\"`); a quoted value is masked to its \
                  matching closing quote, `Bearer`/`Basic` values together with the scheme; `null`, `true`, \
                  `false` and empty values stay, and so do ARN parts such as `:secret:name`",
        example: (
            r#"{\"accessToken\": \"at 9x8\", \"user\": \"etl\"}"#,
            r#"{\"accessToken\": \"[REDACTED]\", \"user\": \"etl\"}"#,
        ),
        mask: MASK,
        find: named_values,
    },
    Rule {
        name: "key-phrase",
        matches: "the value after `api key`, `api token`, `access key`, `access token`, `secret key` or \
                  `auth token` (optionally followed by provided/given/supplied/used/sent/specified) and `:` \
                  or `=`; without `:` only a token-looking next word (8+ characters with letters and \
                  digits); `password`/`secret`/`token`/`key` + one of those participles + `:`",
        example: ("invalid api key provided: pk_test_0a1b2c", "invalid api key provided: [REDACTED]"),
        mask: MASK,
        find: key_phrases,
    },
    Rule {
        name: "auth-scheme",
        matches: "the credentials after `Bearer` or `Basic`, unless they are a plain word (`Bearer token \
                  expired`, `Basic auth`) or an auth parameter (`Bearer realm=\"…\"`)",
        example: ("sent Bearer abc.def to api", "sent Bearer [REDACTED] to api"),
        mask: MASK,
        find: auth_schemes,
    },
    Rule {
        name: "aws-access-key-id",
        matches: "a bare AWS access key id: `AKIA` or `ASIA` and 16 upper-case letters or digits",
        example: ("key AKIAIOSFODNN7EXAMPLE denied", "key [REDACTED] denied"),
        mask: MASK,
        find: aws_access_key_ids,
    },
    Rule {
        name: "aws-secret-key",
        matches: "a bare 40-character run of `A-Za-z0-9/+` with upper case, lower case and digits, \
                  changing character class often (random, not CamelCase); git SHAs (hex, one case) never match",
        example: ("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY.", "secret [REDACTED]."),
        mask: MASK,
        find: aws_secret_keys,
    },
    Rule {
        name: "email",
        matches: "an e-mail address `local@domain.tld`, but not the `user@host` of a URL (`ssh://git@host`)",
        example: ("user maria.silva@example.com.br not found", "user [EMAIL] not found"),
        mask: EMAIL,
        find: emails,
    },
    Rule {
        name: "opaque-token",
        matches: "a run of token characters with a random-looking part: 16+ letters and digits that switch \
                  character class at least every fourth character and are not one-case hex (digests, \
                  UUIDs, trace ids stay); the whole run is masked, or in a path only the random segment",
        example: ("key fc-9f8e7d6c5b4a39281706AbCdEf was rejected", "key [REDACTED] was rejected"),
        mask: MASK,
        find: opaque_tokens,
    },
];

/// Masks secrets (see [`RULES`]: named values, key phrases, URL passwords, PEM blocks,
/// JWTs, bearer credentials, AWS keys, long random tokens) and e-mail addresses.
pub fn text(input: &str) -> String {
    let mut out = input.to_string();
    let mut spans = Vec::new();
    for rule in RULES {
        spans.clear();
        (rule.find)(&out, &mut spans);
        if !spans.is_empty() {
            out = replace(&out, &spans, rule.mask);
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

/// Replaces each span with `mask`; overlapping spans are merged, never partly skipped.
fn replace(s: &str, spans: &[Range<usize>], mask: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for r in spans {
        if r.end <= at {
            continue;
        }
        if r.start >= at {
            out.push_str(&s[at..r.start]);
            out.push_str(mask);
        }
        at = r.end;
    }
    out.push_str(&s[at..]);
    out
}

// ---------------------------------------------------------------------------------------
// Scanning helpers. All positions are byte offsets that sit next to an ASCII byte, so they
// are always character boundaries.

/// Characters of a key name or a word: `api_key`, `x-api-key`, `db.password`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Characters that end an unquoted value.
fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\'' | b',' | b';' | b'&' | b'\\' | b'<' | b'>' | b'(' | b')' | b']' | b'{' | b'}' | b'|' | b'`'
        )
}

fn skip_blanks(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && matches!(b[j], b' ' | b'\t') {
        j += 1;
    }
    j
}

fn skip_backslashes(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && b[j] == b'\\' {
        j += 1;
    }
    j
}

/// End of the run starting at `j` of bytes satisfying `f`.
fn run_end(b: &[u8], mut j: usize, f: impl Fn(u8) -> bool) -> usize {
    while j < b.len() && f(b[j]) {
        j += 1;
    }
    j
}

/// Whether `word` (ignoring case and anything but letters and digits) ends with `tail`.
fn ends_with_name(word: &str, tail: &str) -> bool {
    let mut letters = word.bytes().rev().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_lowercase());
    tail.bytes().rev().all(|t| letters.next() == Some(t))
}

/// `word` is exactly `name` ignoring case and anything but letters and digits.
fn is_name(word: &str, name: &str) -> bool {
    word.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_lowercase()).eq(name.bytes())
}

/// The value that starts at `j`, right after a separator: a quoted string up to its
/// closing quote, or an unquoted run. Returns the range to mask and whether it was quoted.
///
/// A quote opened with `n` backslashes before it (`\"` inside a JSON string, `\\\"` one
/// level deeper) closes at the first quote preceded by exactly `n` backslashes, so an
/// escaped quote inside the value does not end it early. Values that must stay (empty,
/// `null`, `true`, `false`, an earlier mask, a PEM header) give `None`.
fn value_at(s: &str, j: usize) -> Option<(Range<usize>, bool)> {
    let b = s.as_bytes();
    let k = skip_backslashes(b, j);
    let (range, quoted) = if k < b.len() && matches!(b[k], b'"' | b'\'') {
        let (quote, escapes, start) = (b[k], k - j, k + 1);
        let mut first = None;
        let mut end = None;
        let mut p = start;
        while let Some(off) = b[p..].iter().position(|&c| c == quote) {
            let at = p + off;
            let before = at - b[start..at].iter().rev().take_while(|&&c| c == b'\\').count();
            if at - before == escapes {
                end = Some(before);
                break;
            }
            first.get_or_insert(before);
            p = at + 1;
        }
        (start..end.or(first).unwrap_or(b.len()), true)
    } else {
        let mut end = run_end(b, j, |c| !ends_value(c));
        while end > j && b[end - 1] == b'.' {
            end -= 1;
        }
        (j..end, false)
    };
    let (v, from_start) = (&s[range.clone()], &s[range.start..]);
    let keep = v.is_empty()
        || from_start.starts_with(MASK)
        || from_start.starts_with(EMAIL)
        || v.starts_with("-----")
        || ["null", "true", "false"].iter().any(|w| v.eq_ignore_ascii_case(w));
    (!keep).then_some((range, quoted))
}

// ---------------------------------------------------------------------------------------
// The rules.

fn pem_bodies(s: &str, out: &mut Vec<Range<usize>>) {
    const BEGIN: &str = "-----BEGIN ";
    let mut from = 0;
    while let Some(off) = s[from..].find(BEGIN) {
        let label = from + off + BEGIN.len();
        let Some(label_len) = s[label..].find("-----") else { break };
        from = label + label_len;
        if label_len > 64 || !s[label..from].bytes().all(|c| c.is_ascii_uppercase() || c == b' ') {
            continue;
        }
        let body = from + "-----".len();
        let end = s[body..].find("-----END").map_or(s.len(), |e| body + e);
        if end > body && &s[body..end] != MASK {
            out.push(body..end);
        }
        from = end;
    }
}

fn url_passwords(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(off) = s[from..].find("://") {
        let sep = from + off;
        let start = sep + 3;
        let end = run_end(b, start, |c| !(ends_value(c) || matches!(c, b'/' | b'?' | b'#')) || c == b',');
        from = end.max(start);
        if sep == 0 || !b[sep - 1].is_ascii_alphanumeric() {
            continue;
        }
        let authority = &s[start..end];
        let Some(at) = authority.rfind('@') else { continue };
        let Some(colon) = authority[..at].find(':') else { continue };
        let password = start + colon + 1..start + at;
        if !password.is_empty() && &s[password.clone()] != MASK {
            out.push(password);
        }
    }
}

fn jwts(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let base64url = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_');
    let mut from = 0;
    while let Some(off) = s[from..].find("eyJ") {
        let start = from + off;
        from = start + 3;
        if start > 0 && base64url(b[start - 1]) {
            continue;
        }
        let header_end = run_end(b, start, base64url);
        if header_end - start < 8 || b.get(header_end) != Some(&b'.') || !s[header_end + 1..].starts_with("eyJ") {
            continue;
        }
        let mut end = run_end(b, header_end + 1, base64url);
        while b.get(end) == Some(&b'.') {
            end = run_end(b, end + 1, base64url);
        }
        out.push(start..end);
        from = end;
    }
}

/// Name endings (letters and digits only, lower case) that make a key's value secret.
const SECRET_NAMES: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "apikey",
    "accesskey",
    "accesskeyid",
    "secretkey",
    "privatekey",
    "signingkey",
    "authorization",
    "credential",
    "credentials",
    "signature",
    "cookie",
    "bearer",
];

fn named_values(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_word(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        i = run_end(b, i, is_word);
        let word = &s[start..i];
        let bare_key = is_name(word, "key");
        if !bare_key && !SECRET_NAMES.iter().any(|n| ends_with_name(word, n)) {
            continue;
        }
        // The closing quote of a quoted key (`"key"`, `\"key\"`), blanks, then `=` or `:`.
        let mut j = skip_backslashes(b, i);
        if j < b.len() && matches!(b[j], b'"' | b'\'') {
            j += 1;
        } else {
            j = i;
        }
        j = skip_blanks(b, j);
        if j >= b.len() || !matches!(b[j], b'=' | b':') {
            continue;
        }
        // `…:secret:prod/db` is an ARN, not an assignment.
        if b[j] == b':' && j == i && start > 0 && b[start - 1] == b':' {
            continue;
        }
        j += 1;
        if b.get(j) == Some(&b'>') {
            j += 1;
        }
        let Some((mut value, quoted)) = value_at(s, skip_blanks(b, j)) else { continue };
        let v = &s[value.clone()];
        if bare_key && (v.contains('/') || v.contains('.')) && !aws_secret_key(v) && !has_random_part(v) {
            continue;
        }
        if !quoted && (v.eq_ignore_ascii_case("bearer") || v.eq_ignore_ascii_case("basic")) {
            let next = skip_blanks(b, value.end);
            value.end = run_end(b, next, |c| !ends_value(c));
        }
        i = value.end;
        out.push(value);
    }
}

const KEY_PHRASES: &[&str] = &["api key", "api token", "access key", "access token", "secret key", "auth token"];
const KEY_WORDS: &[&str] = &["password", "passphrase", "secret", "token", "key"];
const PARTICIPLES: &[&str] = &["provided", "given", "supplied", "used", "sent", "specified"];

/// The word at `j` (letters only), if it is one of `words`, as its end.
fn word_among(s: &str, j: usize, words: &[&str]) -> Option<usize> {
    let end = run_end(s.as_bytes(), j, |c| c.is_ascii_alphabetic());
    words.iter().any(|w| s[j..end].eq_ignore_ascii_case(w)).then_some(end)
}

fn key_phrases(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let phrase = KEY_PHRASES
            .iter()
            .map(|p| p.len())
            .find(|&n| s.get(i..i + n).is_some_and(|t| KEY_PHRASES.iter().any(|p| t.eq_ignore_ascii_case(p))))
            .filter(|&n| !b.get(i + n).is_some_and(u8::is_ascii_alphanumeric));
        let (mut p, multi) = match phrase {
            Some(n) => (i + n, true),
            None => match word_among(s, i, KEY_WORDS) {
                Some(end) => (end, false),
                None => {
                    i = run_end(b, i, |c| c.is_ascii_alphanumeric());
                    continue;
                }
            },
        };
        i = p;
        let participle = word_among(s, skip_blanks(b, p), PARTICIPLES);
        if let Some(end) = participle {
            p = end;
        } else if !multi {
            continue;
        }
        let r = skip_blanks(b, p);
        if r < b.len() && matches!(b[r], b':' | b'=') {
            if let Some((value, _)) = value_at(s, skip_blanks(b, r + 1)) {
                i = value.end;
                out.push(value);
            }
        } else if participle.is_none() && r > p {
            if let Some((value, _)) = value_at(s, r) {
                let v = &s[value.clone()];
                let token_like =
                    v.len() >= 8 && v.bytes().any(|c| c.is_ascii_digit()) && v.bytes().any(|c| c.is_ascii_alphabetic());
                if token_like {
                    i = value.end;
                    out.push(value);
                }
            }
        }
    }
}

fn auth_schemes(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        i = run_end(b, i, |c| c.is_ascii_alphanumeric());
        let word = &s[start..i];
        if !(word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic")) {
            continue;
        }
        let v_start = skip_blanks(b, i);
        if v_start == i {
            continue;
        }
        let v_end = run_end(b, v_start, |c| !ends_value(c));
        let v = &s[v_start..v_end];
        let mut rest = v.bytes().skip(1);
        let plain_word = v.bytes().all(|c| c.is_ascii_alphabetic()) && rest.all(|c| c.is_ascii_lowercase());
        let parameter = v.find('=').is_some_and(|e| v[e..].bytes().any(|c| c != b'='));
        if v.is_empty() || v.starts_with('[') || plain_word || parameter {
            continue;
        }
        out.push(v_start..v_end);
        i = v_end;
    }
}

fn aws_access_key_ids(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        i = run_end(b, i, |c| c.is_ascii_alphanumeric());
        let w = &s[start..i];
        if w.len() == 20
            && (w.starts_with("AKIA") || w.starts_with("ASIA"))
            && w.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            out.push(start..i);
        }
    }
}

/// Upper case, lower case or digit: changes between them measure randomness.
fn class(c: u8) -> u8 {
    match c {
        b'a'..=b'z' => 0,
        b'A'..=b'Z' => 1,
        b'0'..=b'9' => 2,
        _ => 3,
    }
}

fn class_changes(v: &str) -> usize {
    v.as_bytes().windows(2).filter(|w| class(w[0]) != class(w[1])).count()
}

/// A 40-character AWS secret access key shape.
fn aws_secret_key(v: &str) -> bool {
    v.len() == 40
        && v.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+'))
        && v.bytes().any(|c| c.is_ascii_uppercase())
        && v.bytes().any(|c| c.is_ascii_lowercase())
        && v.bytes().any(|c| c.is_ascii_digit())
        && class_changes(v) >= 12
}

fn aws_secret_keys(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let base64 = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+');
    let mut i = 0;
    while i < b.len() {
        if !base64(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        i = run_end(b, i, base64);
        // Part of a longer token (`x-…`, `…=` padding, `….json`) is not a bare key.
        let glued_before = start > 0 && matches!(b[start - 1], b'_' | b'-' | b'.');
        let glued_after = b.get(i).is_some_and(|&c| matches!(c, b'_' | b'-' | b'='))
            || (b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric));
        if !glued_before && !glued_after && aws_secret_key(&s[start..i]) {
            out.push(start..i);
        }
    }
}

fn emails(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let local_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-');
    let mut from = 0;
    while let Some(off) = s[from..].find('@') {
        let at = from + off;
        from = at + 1;
        let mut start = at;
        while start > 0 && local_char(b[start - 1]) {
            start -= 1;
        }
        while start < at && b[start] == b'.' {
            start += 1;
        }
        // `scheme://user@host` names a user on a host, not a mailbox.
        if start == at || (start > 0 && b[start - 1] == b'/') {
            continue;
        }
        let mut end = run_end(b, at + 1, domain_char);
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &s[at + 1..end];
        let tld = domain.rsplit('.').next().unwrap_or("");
        if domain.split('.').count() >= 2
            && domain.split('.').all(|l| !l.is_empty())
            && tld.len() >= 2
            && tld.bytes().all(|c| c.is_ascii_alphabetic())
        {
            out.push(start..end);
            from = end;
        }
    }
}

/// A part of a token that looks random: long, letters and digits mixed densely, and not
/// a one-case hex digest or id.
fn random_part(seg: &str) -> bool {
    let b = seg.as_bytes();
    let hex = b.iter().all(u8::is_ascii_hexdigit);
    let mixed_case = b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_uppercase);
    b.len() >= 16
        && (!hex || mixed_case)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
        && class_changes(seg) * 4 >= b.len()
}

fn has_random_part(v: &str) -> bool {
    v.split(|c: char| !c.is_ascii_alphanumeric()).any(random_part)
}

fn opaque_tokens(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let token = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/' | b'+' | b'=');
    let mut i = 0;
    while i < b.len() {
        if !token(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        i = run_end(b, i, token);
        let mut end = i;
        while end > start && b[end - 1] == b'.' {
            end -= 1;
        }
        let run = &s[start..end];
        if !has_random_part(run) {
            continue;
        }
        let path =
            run.contains('/') && (run.contains('.') || run.matches('/').count() >= 2) && !run.contains(['+', '=']);
        if !path {
            out.push(start..end);
            continue;
        }
        // In a path only the random segments go: `uploads/2026/[REDACTED].csv`.
        let mut seg_start = start;
        for (k, c) in run.bytes().enumerate().chain([(run.len(), b'/')]) {
            if !c.is_ascii_alphanumeric() {
                if random_part(&s[seg_start..start + k]) {
                    out.push(seg_start..start + k);
                }
                seg_start = start + k + 1;
            }
        }
    }
}

/// The event as remediator keeps it (with a claim, in a timer's payload): without the
/// execution's input and output, and with its error cause redacted.
pub fn stored_event(event: &remediator_policy::event::Event) -> serde_json::Value {
    let mut document = event.storable();
    if let Some(cause) = document.pointer_mut("/detail/cause") {
        if let Some(text) = cause.as_str() {
            *cause = serde_json::Value::String(self::text(text));
        }
    }
    document
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

    /// One corpus case: what goes in, what must be gone afterwards, what must remain.
    struct Case {
        input: &'static str,
        gone: &'static [&'static str],
        kept: &'static [&'static str],
    }

    const fn case(input: &'static str, gone: &'static [&'static str], kept: &'static [&'static str]) -> Case {
        Case { input, gone, kept }
    }

    /// Secrets in the shapes they take in real causes. Each `gone` string must not survive
    /// [`text`]; each `kept` string must.
    const CORPUS: &[Case] = &[
        // Escaped JSON: a Lambda errorMessage inside a Step Functions cause, once and twice escaped.
        case(r#"{\"api_key\": \"sk-live-123\"}"#, &["sk-live-123"], &[r#"{\"api_key\": \""#, r#"\"}"#]),
        case(r#"{\\\"api_key\\\": \\\"sk-live-123\\\"}"#, &["sk-live-123"], &[r#"\\\"api_key\\\""#]),
        case(
            r#"{"errorMessage":"Invalid API key: sk_live_abcdef123456","errorType":"AuthError","requestId":"2f5b0a1e-0d4b-4a6f-9f0e-3c1d2b3a4e5f"}"#,
            &["sk_live_abcdef123456"],
            &["Invalid API key: ", r#""errorType":"AuthError""#, "2f5b0a1e-0d4b-4a6f-9f0e-3c1d2b3a4e5f"],
        ),
        case(
            r#"{"errorMessage":"{\"headers\": {\"Authorization\": \"Bearer abc.def\"}}","errorType":"HTTPError"}"#,
            &["abc.def"],
            &[r#"\"Authorization\": \""#, r#"\"}}""#, "HTTPError"],
        ),
        case(
            r#"{"cause":"{\"password\": \"two words, a comma\", \"user\": \"etl\"}"}"#,
            &["two words", "a comma"],
            &[r#"\"user\": \"etl\""#],
        ),
        case(r#"{"token": "ab\"cd-ef", "n": 1}"#, &["cd-ef"], &[r#""n": 1"#]),
        case(r#"{'headers': {'X-Api-Key': 'py-k3y-val'}, 'status': 403}"#, &["py-k3y-val"], &["'X-Api-Key': '", "403"]),
        // Key spellings.
        case(
            r#"{"accessToken":"at-9x8y7z","clientSecret":"cs-hunter2","apiKey":"ak-112233","refresh_token":"rt-445566","privateKey":"pk-778899","sessionToken":"st-abcabc"}"#,
            &["at-9x8y7z", "cs-hunter2", "ak-112233", "rt-445566", "pk-778899", "st-abcabc"],
            &["accessToken", "clientSecret", "apiKey", "refresh_token", "privateKey", "sessionToken"],
        ),
        case("x-api-key: xk-2468ace\nstatus: 403", &["xk-2468ace"], &["x-api-key: ", "status: 403"]),
        case(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            &["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "EXAMPLEKEY"],
            &["aws_secret_access_key = "],
        ),
        case("PGPASSWORD=pg-s3cret psql -h db.internal -U etl", &["pg-s3cret"], &["PGPASSWORD=", "psql -h db.internal -U etl"]),
        case("Server=db;Uid=etl;pwd=odbc-pass;Database=crm", &["odbc-pass"], &["Server=db;Uid=etl;pwd=", ";Database=crm"]),
        case(
            "GET https://maps.example.com/api?key=AIzaSyA1b2C3d4E5f6G7h8&q=x returned 403",
            &["AIzaSyA1b2C3d4E5f6G7h8"],
            &["https://maps.example.com/api?key=", "&q=x returned 403"],
        ),
        case(
            "https://bucket.s3.amazonaws.com/raw/x.json?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261128&X-Amz-Signature=9f8e7d6c5b4a&X-Amz-Security-Token=IQoJb3JpZ2luX2Vj",
            &["AKIAIOSFODNN7EXAMPLE", "9f8e7d6c5b4a", "IQoJb3JpZ2luX2Vj"],
            &["https://bucket.s3.amazonaws.com/raw/x.json?X-Amz-Credential="],
        ),
        // Phrases.
        case("invalid api key provided: pk_test_0a1b2c", &["pk_test_0a1b2c"], &["invalid api key provided: "]),
        case(
            "Incorrect API key provided: sk-proj-abc123***. You can find your API key at https://platform.example.com/account/api-keys.",
            &["sk-proj-abc123"],
            &["Incorrect API key provided: ", "You can find your API key at https://platform.example.com/account/api-keys."],
        ),
        case("Invalid API key sk_live_abcdef123456 for tenant 7", &["sk_live_abcdef123456"], &["Invalid API key ", " for tenant 7"]),
        // AWS keys appearing bare.
        case(
            "The AWS Access Key Id AKIAIOSFODNN7EXAMPLE does not exist in our records.",
            &["AKIAIOSFODNN7EXAMPLE"],
            &["The AWS Access Key Id ", " does not exist in our records."],
        ),
        case("credentials ASIAY34FZKBOKMUTVV7A expired", &["ASIAY34FZKBOKMUTVV7A"], &["credentials ", " expired"]),
        case(
            "creds were AKIAIOSFODNN7EXAMPLE and wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY.",
            &["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "bPxRfiCYEXAMPLEKEY"],
            &["creds were ", " and "],
        ),
        // Connection strings: the password goes, scheme, user and host stay.
        case(
            "could not connect to postgres://etl_user:Pa55w0rd!@db.prod.internal:5432/warehouse: timeout",
            &["Pa55w0rd!"],
            &["postgres://etl_user:", "@db.prod.internal:5432/warehouse: timeout"],
        ),
        case("mysql://root:toor@10.0.0.5:3306/app refused", &["toor"], &["mysql://root:", "@10.0.0.5:3306/app refused"]),
        case(
            "mongodb+srv://svc:m0ng0-pw@cluster0.ab1cd.mongodb.net/db?retryWrites=true",
            &["m0ng0-pw"],
            &["mongodb+srv://svc:", "@cluster0.ab1cd.mongodb.net/db?retryWrites=true"],
        ),
        case("redis://:r3d1s-pw@cache.internal:6379/0", &["r3d1s-pw"], &["redis://:", "@cache.internal:6379/0"]),
        case("https://deploy:gh-pw-42@git.example.com/org/repo.git", &["gh-pw-42"], &["https://deploy:", "@git.example.com/org/repo.git"]),
        case("postgres://etl:p@ss@db.example.com/x", &["p@ss", "ss@db"], &["postgres://etl:", "@db.example.com/x"]),
        case(r#"{\"dsn\": \"postgres://u:p4ss@h.example.com/db\"}"#, &["p4ss"], &[r#"{\"dsn\": \"postgres://u:"#]),
        // E-mail addresses still become [EMAIL]; a URL user without a password is not one.
        case("notify maria.silva@example.com.br failed", &["maria.silva", "example.com.br"], &["notify [EMAIL] failed"]),
        case(r#"{"to":"ops+alerts@thera.io"}"#, &["ops+alerts"], &[r#"{"to":"[EMAIL]"}"#]),
        // PEM blocks, with real newlines, with literal `\n` escapes, and cut off by truncation.
        case(
            "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nabcDEF123\n-----END RSA PRIVATE KEY-----\ndone",
            &["MIIEowIBAAKCAQEA7x", "abcDEF123"],
            &["-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "done"],
        ),
        case(
            r#"{\"pem\": \"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0\nQWERTY\n-----END PRIVATE KEY-----\"}"#,
            &["MIIEvQIBADANBgkqhkiG9w0", "QWERTY"],
            &["-----BEGIN PRIVATE KEY-----"],
        ),
        case("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA…", &["b3BlbnNzaC1rZXktdjE"], &["OPENSSH PRIVATE KEY"]),
        // JWTs and authorization schemes.
        case(
            "token rejected: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig-abc_123 (401)",
            &["eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxMjMifQ", "sig-abc_123"],
            &["token rejected: ", " (401)"],
        ),
        case("sent Bearer abc.def to api (403 Forbidden)", &["abc.def"], &["sent Bearer ", " to api (403 Forbidden)"]),
        case("Authorization: Basic dXNlcjpwYXNz", &["dXNlcjpwYXNz"], &["Authorization: "]),
        case("curl -H 'Authorization: Bearer t0k3n-xyz' https://api.example.com", &["t0k3n-xyz"], &["https://api.example.com"]),
    ];

    /// Useful text that must come back unchanged: error types, ARNs, paths, ids, codes.
    const CLEAN: &[&str] = &[
        "Lambda.TooManyRequestsException: Rate Exceeded.",
        r#"{"Error":"States.Timeout","Cause":"Task timed out after 300.00 seconds"}"#,
        r#"{"errorType":"States.TaskFailed","state":"FetchCompanies"}"#,
        "arn:aws:states:us-east-1:123456789012:execution:thera-pipeline-daily:run-2026-11-28",
        "arn:aws:lambda:us-east-1:123456789012:function:thera-pipeline-prod-apollo-delta-pull:$LATEST",
        "User: arn:aws:sts::123456789012:assumed-role/thera-etl/fetch is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/apollo/api-key-AbC123 because no identity-based policy allows the secretsmanager:GetSecretValue action",
        "s3://thera-pipeline/raw/2026-11-28/companies.json",
        "wrote thera-pipeline/raw/2026-11-28/companies.json and raw/2026-11-28/companies.json",
        "NoSuchKey: The specified key does not exist. (Bucket: thera-pipeline, Key: raw/2026-11-28/companies.json)",
        r#"{"Key": "companies.json", "Bucket": "thera-pipeline"}"#,
        "commit 3f786850e387550fdab836ed7e6dc881de23001b deployed; image 3F786850E387550FDAB836ED7E6DC881DE23001B",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 matches",
        "Request ID: 2f5b0a1e-0d4b-4a6f-9f0e-3c1d2b3a4e5f, trace Root=1-5759e988-bd862e3fe1be46a994272793",
        "HTTP 401 Unauthorized; then status code 403 (Forbidden) at 2026-11-28T10:15:30.123Z",
        "The security token included in the request is invalid.",
        "FATAL: password authentication failed for user \"etl\"",
        "Bearer token expired; Basic auth is not enabled",
        r#"{"secretName": "prod/apollo", "SecretId": "prod/apollo", "token": null, "max_tokens": 4096}"#,
        "ssh://git@github.com/thera/pipeline.git",
        "Task timed out after 300.00 seconds",
        "job run jr_0123456789abcdef0123456789abcdef01234567 in 2026/11/28/[$LATEST]abcdef0123456789abcdef0123456789",
    ];

    #[test]
    fn corpus_secrets_do_not_survive_and_context_does() {
        let mut failures = Vec::new();
        for c in CORPUS {
            let out = text(c.input);
            for s in c.gone {
                if out.contains(s) {
                    failures.push(format!("secret {s:?} survived in {out:?}"));
                }
            }
            for k in c.kept {
                if !out.contains(k) {
                    failures.push(format!("{k:?} was lost from {:?}: {out:?}", c.input));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn clean_text_is_left_alone() {
        let changed: Vec<String> =
            CLEAN.iter().filter(|t| text(t) != **t).map(|t| format!("{t:?}\n  -> {:?}", text(t))).collect();
        assert!(changed.is_empty(), "false positives:\n{}", changed.join("\n"));
    }

    #[test]
    fn redaction_is_idempotent() {
        for input in CORPUS.iter().map(|c| c.input).chain(CLEAN.iter().copied()) {
            let once = text(input);
            assert_eq!(text(&once), once, "second pass changed the output of {input:?}");
        }
    }

    #[test]
    fn realistic_causes_read_well() {
        let sfn = r#"{"errorMessage":"Invalid API key: sk_live_abcdef123456","errorType":"AuthError","requestId":"2f5b0a1e-0d4b-4a6f-9f0e-3c1d2b3a4e5f"}"#;
        assert_eq!(
            text(sfn),
            r#"{"errorMessage":"Invalid API key: [REDACTED]","errorType":"AuthError","requestId":"2f5b0a1e-0d4b-4a6f-9f0e-3c1d2b3a4e5f"}"#
        );
        let lambda =
            r#"{"errorMessage":"{\"headers\": {\"Authorization\": \"Bearer abc.def\"}}","errorType":"HTTPError"}"#;
        assert_eq!(
            text(lambda),
            r#"{"errorMessage":"{\"headers\": {\"Authorization\": \"[REDACTED]\"}}","errorType":"HTTPError"}"#
        );
        assert_eq!(text(r#"{\\\"api_key\\\": \\\"sk-live-123\\\"}"#), r#"{\\\"api_key\\\": \\\"[REDACTED]\\\"}"#);
        assert_eq!(
            text("could not connect to postgres://etl_user:Pa55w0rd!@db.prod.internal:5432/warehouse: timeout"),
            "could not connect to postgres://etl_user:[REDACTED]@db.prod.internal:5432/warehouse: timeout"
        );
        assert_eq!(
            text("key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\n-----END RSA PRIVATE KEY-----\ndone"),
            "key: -----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\ndone"
        );
        assert_eq!(text("uploads/2026/aB3dE5fG7hJ9kL1mN3pQ.csv"), "uploads/2026/[REDACTED].csv");
    }

    #[test]
    fn every_rule_redacts_its_example() {
        for (n, rule) in RULES.iter().enumerate() {
            assert!(!rule.matches.is_empty(), "{}: describe what it matches", rule.name);
            assert!(RULES[..n].iter().all(|r| r.name != rule.name), "{}: duplicate name", rule.name);
            let (input, redacted) = rule.example;
            assert_eq!(text(input), redacted, "{}: example", rule.name);
            let mut spans = Vec::new();
            (rule.find)(input, &mut spans);
            assert!(!spans.is_empty(), "{}: the example must exercise this rule itself", rule.name);
        }
    }

    #[test]
    fn non_ascii_text_around_secrets_is_safe() {
        let input =
            "falha ação — api_key=çhave🔑 e-mail joão@exemplo.com.br, Bearer tökén…, 🔥postgres://u:pässwörd@h/db";
        let out = text(input);
        for gone in ["çhave🔑", "tökén", "pässwörd"] {
            assert!(!out.contains(gone), "{gone} survived in {out}");
        }
        assert!(out.starts_with("falha ação — api_key=[REDACTED] e-mail"), "{out}");
        assert_eq!(text(&out), out);
        // Truncated causes may end anywhere, also inside a quoted value or a PEM block.
        for cut in (0..input.len()).filter(|&i| input.is_char_boundary(i)) {
            let once = text(&input[..cut]);
            assert_eq!(text(&once), once);
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ação", 3), "aç…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn a_stored_event_keeps_neither_input_nor_a_secret_in_its_cause() {
        let event = remediator_policy::event::Event::from_value(serde_json::json!({
            "id": "e", "source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "detail": {"executionArn": "arn:aws:states:us-east-1:1:execution:m:r", "status": "FAILED",
                       "input": "{\"apollo_api_key\": \"sk_live_abcdef123456\"}",
                       "cause": "{\"errorMessage\":\"Invalid API key: sk_live_abcdef123456\"}"}
        }))
        .unwrap();
        let stored = stored_event(&event).to_string();
        assert!(!stored.contains("sk_live_abcdef123456"), "{stored}");
        assert!(!stored.contains("apollo_api_key"), "{stored}");
        assert!(stored.contains("Invalid API key"), "{stored}");
    }
}
