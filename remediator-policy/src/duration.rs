//! Durations as policies and flags write them: `90s`, `5m`, `24h`, `1d`, `1h30m`,
//! `250ms`, with checked arithmetic and a maximum of a year.

use std::time::Duration;

/// The longest duration a policy or a flag may name: a year, leap day included.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86400);

/// Parses `90s`, `5m`, `24h`, `1d`, `1h30m`, `250ms`, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration");
    let too_long = || format!("`{text}` is longer than the maximum of {}", format_duration(MAX_DURATION));
    if text.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        // Only digits are left, so the one way to fail is a number past u64.
        let n: Option<u64> = rest[..digits].parse().ok();
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 3600 * 1000,
            "d" => 86400 * 1000,
            "" => return Err(format!("`{text}` has a number without a unit")),
            other => return Err(format!("`{text}` has an unknown unit `{other}`")),
        };
        total_ms = n
            .and_then(|n| n.checked_mul(unit_ms))
            .and_then(|part| total_ms.checked_add(part))
            .filter(|&t| u128::from(t) <= MAX_DURATION.as_millis())
            .ok_or_else(too_long)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way policies write it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 && s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (days, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(days, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}
