//! Schedule expressions, as EventBridge writes them (`cron(...)`, `rate(...)`), and the
//! runs a schedule missed while its rule was disabled.
//!
//! Why here: re-enabling a disabled rule does not bring back the runs it skipped, and the
//! guide's "Pipeline Not Starting" fix leaves a gap in the data. The catch-up run starts
//! the missed run(s) once; which ones is pure arithmetic on the expression and the
//! interval, so it is unit-tested here and `explain` could show it. EventBridge rules
//! evaluate their expressions in UTC; EventBridge Scheduler schedules carry an IANA time
//! zone (`ScheduleExpressionTimezone`), which [`Schedule::parse`] takes, so that a daily
//! 06:00 in America/Sao_Paulo is 09:00 UTC.
//!
//! A cron expression has six fields: minutes, hours, day of month, month, day of week,
//! year; one of the two day fields is `?`. Supported: `*`, `?`, values and names
//! (`JAN`..`DEC`, `SUN`..`SAT`, 1 = Sunday), ranges `a-b`, steps `/n`, lists, `L` (last
//! day of the month, or `5L`: the month's last Thursday), `W` (`15W`, `LW`: the nearest
//! weekday) and `#` (`2#1`: the first Monday). A rate fires every N minutes, hours or
//! days from the time the rule was enabled, which is not known: its missed runs are
//! counted from the time it was disabled.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// How far back missed runs are looked for: only the newest fires are ever started, and
/// a longer look would only cost time.
pub const LOOKBACK_DAYS: i64 = 400;

/// Why an expression could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("`{0}` is not a schedule expression: expected cron(...) or rate(...)")]
    NotSchedule(String),
    #[error("rate `{0}`: expected `rate(N minute|minutes|hour|hours|day|days)` with N > 0")]
    Rate(String),
    #[error("cron `{expr}`: {why}")]
    Cron { expr: String, why: String },
    #[error("unknown time zone `{0}`")]
    TimeZone(String),
}

/// A parsed schedule expression with its time zone.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every this many seconds.
    Rate(i64),
    Cron(Box<Cron>),
}

/// The six fields of a cron expression, each as the set of values it admits.
#[derive(Clone, Debug)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    months: Vec<bool>,
    years: Vec<bool>,
    day: Day,
    tz: TimeZone,
}

/// The day fields: exactly one of them constrains the day.
#[derive(Clone, Debug)]
enum Day {
    /// Day of month values (1..=31); `last` adds the month's last day.
    OfMonth { days: Vec<bool>, last: bool },
    /// `nW`: the weekday nearest to day n; `LW`: the last weekday of the month.
    NearestWeekday(Option<i8>),
    /// Day of week values (1 = Sunday .. 7 = Saturday).
    OfWeek(Vec<bool>),
    /// `dL`: the last such weekday of the month.
    LastOfWeek(i8),
    /// `d#n`: the n-th such weekday of the month.
    NthOfWeek(i8, i8),
    /// Both `*` (or one `*` and one `?`): every day.
    Every,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: i16 = 1970;
const LAST_YEAR: i16 = 2199;

impl Schedule {
    /// Reads `cron(...)` or `rate(...)`; `tz` is an IANA name (`None`: UTC, as for rules).
    pub fn parse(expression: &str, tz: Option<&str>) -> Result<Schedule, ScheduleError> {
        let expression = expression.trim();
        let inner = |prefix: &str| expression.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
        if let Some(body) = inner("rate(") {
            return parse_rate(body).map(Schedule::Rate).ok_or_else(|| ScheduleError::Rate(expression.to_string()));
        }
        let Some(body) = inner("cron(") else {
            return Err(ScheduleError::NotSchedule(expression.to_string()));
        };
        let tz = match tz.map(str::trim).filter(|t| !t.is_empty()) {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_string()))?,
        };
        parse_cron(body, tz)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|why| ScheduleError::Cron { expr: expression.to_string(), why })
    }

    /// The newest `max` times (Unix seconds, oldest first) at which the schedule fired
    /// after `after` and at or before `until`. Looks back at most [`LOOKBACK_DAYS`].
    pub fn fires_between(&self, after: i64, until: i64, max: usize) -> Vec<i64> {
        let after = after.max(until - LOOKBACK_DAYS * 86_400);
        if max == 0 || until <= after {
            return Vec::new();
        }
        let mut fires = match self {
            Schedule::Rate(every) => {
                let count = (until - after) / every;
                let first = (count - max as i64 + 1).max(1);
                (first..=count).rev().map(|k| after + k * every).collect()
            }
            Schedule::Cron(cron) => cron.fires_back(after, until, max),
        };
        fires.sort_unstable();
        fires.dedup();
        fires
    }
}

fn parse_rate(body: &str) -> Option<i64> {
    let mut parts = body.split_whitespace();
    let n: i64 = parts.next()?.parse().ok().filter(|n| *n > 0)?;
    let unit = match parts.next()? {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3_600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    n.checked_mul(unit)
}

fn parse_cron(body: &str, tz: TimeZone) -> Result<Cron, String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let [minutes, hours, dom, month, dow, year] = fields[..] else {
        return Err(format!(
            "expected 6 fields (minutes hours day-of-month month day-of-week year), found {}",
            fields.len()
        ));
    };
    let day = match (dom, dow) {
        ("?", "?") => return Err("only one of day-of-month and day-of-week may be `?`".into()),
        ("?", dow) => parse_dow(dow)?,
        (dom, "?") => parse_dom(dom)?,
        _ => return Err("one of day-of-month and day-of-week must be `?`".into()),
    };
    Ok(Cron {
        minutes: parse_field("minutes", minutes, 0, 59, &[])?,
        hours: parse_field("hours", hours, 0, 23, &[])?,
        months: parse_field("month", month, 1, 12, &MONTHS)?,
        years: parse_field("year", year, i64::from(FIRST_YEAR), i64::from(LAST_YEAR), &[])?,
        day,
        tz,
    })
}

fn parse_dom(text: &str) -> Result<Day, String> {
    if text == "*" {
        return Ok(Day::Every);
    }
    if text == "LW" {
        return Ok(Day::NearestWeekday(None));
    }
    if let Some(n) = text.strip_suffix('W') {
        let day = value("day-of-month", n, 1, 31, &[])?;
        return Ok(Day::NearestWeekday(Some(day as i8)));
    }
    let last = text.split(',').any(|p| p == "L");
    let rest: Vec<&str> = text.split(',').filter(|p| *p != "L").collect();
    let days =
        if rest.is_empty() { vec![false; 32] } else { parse_field("day-of-month", &rest.join(","), 1, 31, &[])? };
    Ok(Day::OfMonth { days, last })
}

fn parse_dow(text: &str) -> Result<Day, String> {
    if text == "*" {
        return Ok(Day::Every);
    }
    if let Some((d, n)) = text.split_once('#') {
        let d = value("day-of-week", d, 1, 7, &WEEKDAYS)?;
        let n = value("day-of-week", n, 1, 5, &[])?;
        return Ok(Day::NthOfWeek(d as i8, n as i8));
    }
    if text == "L" {
        return Ok(Day::OfWeek((0..=7).map(|d| d == 7).collect()));
    }
    if let Some(d) = text.strip_suffix('L') {
        return Ok(Day::LastOfWeek(value("day-of-week", d, 1, 7, &WEEKDAYS)? as i8));
    }
    parse_field("day-of-week", text, 1, 7, &WEEKDAYS).map(Day::OfWeek)
}

/// One field: a comma list of `*`, `v`, `a-b`, each with an optional `/step`.
fn parse_field(field: &str, text: &str, min: i64, max: i64, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut set = vec![false; max as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, value(field, s, 1, max.max(1), &[])?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(field, a, min, max, names)?, value(field, b, min, max, names)?),
                // `5/15`: from 5 to the end, every 15.
                None if part.contains('/') => (value(field, r, min, max, names)?, max),
                None => {
                    let v = value(field, r, min, max, names)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("{field}: range `{range}` runs backwards"));
        }
        let mut v = from;
        while v <= to {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok(set)
}

fn value(field: &str, text: &str, min: i64, max: i64, names: &[&str]) -> Result<i64, String> {
    let upper = text.to_ascii_uppercase();
    let v = match names.iter().position(|n| *n == upper) {
        Some(i) => i as i64 + min,
        None => text.parse::<i64>().map_err(|_| format!("{field}: `{text}` is not a value"))?,
    };
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{field}: {v} is outside {min}-{max}"))
    }
}

impl Cron {
    /// Fires at or before `until` and after `after`, newest first, at most `max`.
    fn fires_back(&self, after: i64, until: i64, max: usize) -> Vec<i64> {
        let local = |t: i64| Timestamp::from_second(t).map(|ts| ts.to_zoned_datetime(self.tz.clone()).date());
        let (Ok(first), Ok(mut date)) = (local(after), local(until)) else { return Vec::new() };
        let mut out = Vec::new();
        while date >= first && out.len() < max {
            if self.admits(date) {
                for hour in (0..24).rev().filter(|h| self.hours[*h as usize]) {
                    for minute in (0..60).rev().filter(|m| self.minutes[*m as usize]) {
                        let Ok(at) = DateTime::new(date.year(), date.month(), date.day(), hour, minute, 0, 0)
                            .and_then(|dt| dt.to_zoned_datetime(self.tz.clone()))
                        else {
                            continue;
                        };
                        let t = at.timestamp().as_second();
                        if t > after && t <= until && out.len() < max && !out.contains(&t) {
                            out.push(t);
                        }
                    }
                }
            }
            match date.yesterday() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        out
    }

    fn admits(&self, date: Date) -> bool {
        let year_ok = self.years.get(date.year() as usize).copied().unwrap_or(false);
        if !year_ok || !self.months[date.month() as usize] {
            return false;
        }
        let last_day = date.days_in_month();
        // 1 = Sunday .. 7 = Saturday.
        let weekday = date.weekday().to_sunday_one_offset();
        match &self.day {
            Day::Every => true,
            Day::OfMonth { days, last } => days[date.day() as usize] || (*last && date.day() == last_day),
            Day::OfWeek(days) => days[weekday as usize],
            Day::LastOfWeek(d) => weekday == *d && date.day() + 7 > last_day,
            Day::NthOfWeek(d, n) => weekday == *d && (date.day() - 1) / 7 + 1 == *n,
            Day::NearestWeekday(n) => date.day() == nearest_weekday(date, n.unwrap_or(last_day)),
        }
    }
}

/// The weekday nearest to day `n` of `date`'s month, never leaving the month.
fn nearest_weekday(date: Date, n: i8) -> i8 {
    let last = date.days_in_month();
    let n = n.min(last);
    let Ok(day) = Date::new(date.year(), date.month(), n) else { return n };
    match day.weekday().to_sunday_one_offset() {
        7 if n == 1 => 3,        // Saturday the 1st: Monday the 3rd
        7 => n - 1,              // Saturday: Friday
        1 if n == last => n - 2, // Sunday the last: Friday
        1 => n + 1,              // Sunday: Monday
        _ => n,
    }
}

/// The deterministic name of the catch-up run for `rule`'s fire at `at`: the same missed
/// run always gets the same name, so Step Functions refuses a second start.
pub fn catch_up_name(rule: &str, at: i64) -> String {
    const MAX: usize = 80;
    let stamp = crate::event::format_timestamp(at).replace(['-', ':'], "");
    // `20261129T090000Z` -> `20261129T0900Z`: schedules fire on the minute.
    let stamp = format!("{}Z", &stamp[..stamp.len().saturating_sub(3)]);
    let rule: String =
        rule.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect();
    let room = MAX - "catch-up-".len() - 1 - stamp.len();
    let rule = if rule.len() <= room {
        rule
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(rule.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", &rule[..room - 9])
    };
    format!("catch-up-{rule}-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_timestamp;

    fn t(s: &str) -> i64 {
        parse_timestamp(s).unwrap()
    }

    fn fires(expr: &str, tz: Option<&str>, after: &str, until: &str, max: usize) -> Vec<String> {
        Schedule::parse(expr, tz)
            .unwrap()
            .fires_between(t(after), t(until), max)
            .into_iter()
            .map(crate::event::format_timestamp)
            .collect()
    }

    #[test]
    fn a_daily_cron_missed_while_disabled_for_two_days() {
        let got = fires("cron(0 9 * * ? *)", None, "2026-11-27T08:00:00Z", "2026-11-29T10:00:00Z", 5);
        assert_eq!(got, ["2026-11-27T09:00:00Z", "2026-11-28T09:00:00Z", "2026-11-29T09:00:00Z"]);
        // At most N, the newest.
        let got = fires("cron(0 9 * * ? *)", None, "2026-11-27T08:00:00Z", "2026-11-29T10:00:00Z", 1);
        assert_eq!(got, ["2026-11-29T09:00:00Z"]);
        // Disabled and enabled again before the next fire: nothing missed.
        assert!(fires("cron(0 9 * * ? *)", None, "2026-11-29T09:00:00Z", "2026-11-29T10:00:00Z", 5).is_empty());
    }

    #[test]
    fn a_time_zone_moves_the_fire_to_its_utc_instant() {
        // 06:00 in Sao Paulo (UTC-3, no daylight saving since 2019) is 09:00 UTC.
        let got =
            fires("cron(0 6 * * ? *)", Some("America/Sao_Paulo"), "2026-11-28T10:00:00Z", "2026-11-29T12:00:00Z", 3);
        assert_eq!(got, ["2026-11-29T09:00:00Z"]);
        // New York crosses daylight saving on 2026-11-01: 06:00 EDT is 10:00 UTC, EST 11:00.
        let got =
            fires("cron(0 6 * * ? *)", Some("America/New_York"), "2026-10-31T00:00:00Z", "2026-11-02T00:00:00Z", 5);
        assert_eq!(got, ["2026-10-31T10:00:00Z", "2026-11-01T11:00:00Z"]);
        assert_eq!(
            Schedule::parse("cron(0 6 * * ? *)", Some("Mars/Olympus")).unwrap_err(),
            ScheduleError::TimeZone("Mars/Olympus".into())
        );
    }

    #[test]
    fn weekly_lists_ranges_steps_and_names() {
        // The Thera weekly run: Mondays 07:30 UTC. 2026-11-30 is a Monday.
        let got = fires("cron(30 7 ? * MON *)", None, "2026-11-15T00:00:00Z", "2026-11-30T08:00:00Z", 5);
        assert_eq!(got, ["2026-11-16T07:30:00Z", "2026-11-23T07:30:00Z", "2026-11-30T07:30:00Z"]);
        let got = fires("cron(0/20 8-9 ? * 2-6 *)", None, "2026-11-27T08:30:00Z", "2026-11-30T08:30:00Z", 10);
        assert_eq!(
            got,
            [
                "2026-11-27T08:40:00Z",
                "2026-11-27T09:00:00Z",
                "2026-11-27T09:20:00Z",
                "2026-11-27T09:40:00Z",
                "2026-11-30T08:00:00Z",
                "2026-11-30T08:20:00Z",
            ]
        );
        let got = fires("cron(0 12 1,15 jan,nov ? 2026)", None, "2026-01-01T00:00:00Z", "2027-01-31T00:00:00Z", 10);
        assert_eq!(
            got,
            ["2026-01-01T12:00:00Z", "2026-01-15T12:00:00Z", "2026-11-01T12:00:00Z", "2026-11-15T12:00:00Z"]
        );
    }

    #[test]
    fn last_nearest_weekday_and_nth() {
        // Last day of the month.
        assert_eq!(
            fires("cron(0 0 L * ? *)", None, "2026-01-15T00:00:00Z", "2026-03-15T00:00:00Z", 5),
            ["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"]
        );
        // 2026-08-01 is a Saturday: 1W is Monday the 3rd. 2026-05-31 is a Sunday: LW is Friday the 29th.
        assert_eq!(
            fires("cron(0 0 1W * ? *)", None, "2026-07-31T00:00:00Z", "2026-08-10T00:00:00Z", 5),
            ["2026-08-03T00:00:00Z"]
        );
        assert_eq!(
            fires("cron(0 0 LW * ? *)", None, "2026-05-20T00:00:00Z", "2026-06-10T00:00:00Z", 5),
            ["2026-05-29T00:00:00Z"]
        );
        // The first Monday, and the last Friday, of November 2026.
        assert_eq!(
            fires("cron(0 0 ? * 2#1 *)", None, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", 5),
            ["2026-11-02T00:00:00Z"]
        );
        assert_eq!(
            fires("cron(0 0 ? * 6L *)", None, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", 5),
            ["2026-11-27T00:00:00Z"]
        );
    }

    #[test]
    fn rates_count_from_the_disable_time() {
        let got = fires("rate(6 hours)", None, "2026-11-29T00:00:00Z", "2026-11-29T19:00:00Z", 5);
        assert_eq!(got, ["2026-11-29T06:00:00Z", "2026-11-29T12:00:00Z", "2026-11-29T18:00:00Z"]);
        assert_eq!(fires("rate(1 day)", None, "2026-11-29T00:00:00Z", "2026-11-29T19:00:00Z", 5), Vec::<String>::new());
        assert_eq!(
            fires("rate(1 day)", None, "2026-11-20T00:00:00Z", "2026-11-29T19:00:00Z", 2),
            ["2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z"]
        );
    }

    #[test]
    fn malformed_expressions_say_what_is_wrong() {
        let err = |e: &str| Schedule::parse(e, None).unwrap_err().to_string();
        assert_eq!(
            err("at(2026-11-29T09:00:00)"),
            "`at(2026-11-29T09:00:00)` is not a schedule expression: expected cron(...) or rate(...)"
        );
        assert!(err("rate(0 days)").contains("N > 0"));
        assert!(err("rate(5 weeks)").contains("rate(N minute"));
        assert!(err("cron(0 9 * * *)").contains("expected 6 fields"), "{}", err("cron(0 9 * * *)"));
        assert!(err("cron(0 9 ? * ? *)").contains("only one"));
        assert!(err("cron(0 9 1 * MON *)").contains("must be `?`"));
        assert!(err("cron(0 9 * * * *)").contains("must be `?`"), "as EventBridge: one day field is `?`");
        assert!(err("cron(0 24 * * ? *)").contains("hours: 24 is outside 0-23"));
        assert!(err("cron(0 9 ? * FUN *)").contains("`FUN` is not a value"));
        assert!(err("cron(0 9-5 * * ? *)").contains("runs backwards"));
    }

    #[test]
    fn a_long_disable_is_looked_back_only_so_far() {
        let s = Schedule::parse("cron(0 9 * * ? *)", None).unwrap();
        let until = t("2026-11-29T10:00:00Z");
        let got = s.fires_between(0, until, 1_000);
        assert_eq!(got.len() as i64, LOOKBACK_DAYS);
    }

    #[test]
    fn catch_up_names_are_deterministic_short_and_valid() {
        let at = t("2026-11-29T09:00:00Z");
        assert_eq!(catch_up_name("thera-pipeline-daily-rule", at), "catch-up-thera-pipeline-daily-rule-20261129T0900Z");
        let long = "a.very-long-rule-name-that-goes-on-and-on-and-on-and-on-and-on-x";
        let name = catch_up_name(long, at);
        assert!(name.len() <= 80, "{name}");
        assert_eq!(name, catch_up_name(long, at));
        assert_ne!(name, catch_up_name(&long.replace('x', "y"), at));
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')), "{name}");
        assert_ne!(catch_up_name("a.b", at), catch_up_name("a-b", at), "names that differ stay apart");
    }
}
