//! Reading an upstream's rate-limit signals: `Retry-After`, the three rate-limit header styles,
//! what kind of limit a 429 hit (spec §4.4) and how long a 429'd key rests.
//!
//! Invariants:
//! - The header style is detected from the headers present, never from the provider's name (the
//!   reference chose by name, so a proxy in front of OpenAI lost its headers).
//! - Header names are matched case-insensitively; unparsable values are `None`, never an error:
//!   a missing hint only makes the gateway fall back to its defaults.
//! - Times in the past give a zero duration, not `None`: the upstream did say "now".
//! - A cool-down never exceeds the configured maximum, whatever the upstream asks for.

use crate::outcome::RateLimitHeaders;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::time::Duration;

/// A `retry-after` at or below this still fits a concurrency limit (spec §4.4): a request-per-
/// minute or quota limit asks for longer rests.
pub const CONCURRENT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The generic `x-ratelimit-reset` is a unix timestamp when larger than this (2001-09-09), and a
/// number of seconds otherwise.
const UNIX_TIMESTAMP_THRESHOLD: f64 = 1e9;

/// What kind of limit a 429 hit; it decides what the adaptive concurrency learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Too many requests at once: lower the key's concurrency.
    Concurrent,
    /// The per-window request budget is spent: wait, concurrency is not the problem.
    Rpm,
    /// Cannot tell: lower the concurrency a little.
    Unknown,
}

/// Parses a `Retry-After` value: integer or decimal seconds, or an HTTP date (RFC 7231
/// IMF-fixdate, RFC 2822, and the obsolete RFC 850 and asctime forms RFC 7231 still requires
/// recipients to accept). A date in the past gives zero; anything else unparsable gives `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Some(secs) = parse_seconds(value) {
        return Some(secs);
    }
    let at = parse_http_date(value)?;
    Some(until(at, now))
}

/// Reads the rate-limit headers of a response, whichever style they come in. The style is the
/// first of OpenAI (`x-ratelimit-*-requests`), Anthropic (`anthropic-ratelimit-requests-*`) and
/// generic (`x-ratelimit-*`) that has at least one of its headers present.
pub fn parse_rate_limit_headers(headers: &[(&str, &str)], now: DateTime<Utc>) -> RateLimitHeaders {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let count = |name: &str| get(name).and_then(parse_count);

    let openai = [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ];
    if openai.iter().any(|n| get(n).is_some()) {
        return RateLimitHeaders {
            limit: count(openai[0]),
            remaining: count(openai[1]),
            reset: get(openai[2]).and_then(parse_go_duration),
        };
    }
    let anthropic = [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ];
    if anthropic.iter().any(|n| get(n).is_some()) {
        return RateLimitHeaders {
            limit: count(anthropic[0]),
            remaining: count(anthropic[1]),
            reset: get(anthropic[2]).and_then(|v| {
                DateTime::parse_from_rfc3339(v)
                    .ok()
                    .map(|at| until(at.with_timezone(&Utc), now))
                    // Some proxies rewrite it as seconds.
                    .or_else(|| parse_seconds(v))
            }),
        };
    }
    RateLimitHeaders {
        limit: count("x-ratelimit-limit"),
        remaining: count("x-ratelimit-remaining"),
        reset: get("x-ratelimit-reset").and_then(|v| parse_generic_reset(v, now)),
    }
}

/// Tells what kind of limit a 429 hit (spec §4.4): `remaining == 0` ⇒ [`LimitKind::Rpm`];
/// otherwise at least two requests in flight on the key, `remaining` absent or positive and
/// `retry_after` absent or at most [`CONCURRENT_MAX_RETRY_AFTER`] ⇒ [`LimitKind::Concurrent`];
/// otherwise [`LimitKind::Unknown`].
pub fn limit_kind(
    headers: &RateLimitHeaders,
    retry_after: Option<Duration>,
    observed_in_flight: u32,
) -> LimitKind {
    if headers.remaining == Some(0) {
        return LimitKind::Rpm;
    }
    // `remaining` is known non-zero here, so only the in-flight count and the wait matter.
    let short_wait = retry_after.is_none_or(|d| d <= CONCURRENT_MAX_RETRY_AFTER);
    if observed_in_flight >= 2 && short_wait {
        LimitKind::Concurrent
    } else {
        LimitKind::Unknown
    }
}

/// How long a 429'd key rests: at least `retry_after` (or `default` when the upstream gave none);
/// when the window is spent (`remaining == 0`) at least until it resets; never more than `max`.
pub fn cooldown(
    retry_after: Option<Duration>,
    headers: &RateLimitHeaders,
    default: Duration,
    max: Duration,
) -> Duration {
    let mut rest = retry_after.unwrap_or(default);
    if headers.remaining == Some(0)
        && let Some(reset) = headers.reset
    {
        rest = rest.max(reset);
    }
    rest.min(max)
}

/// The time from `now` until `at`, zero if `at` has passed.
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// Non-negative integer or decimal seconds.
fn parse_seconds(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Only plain decimals: `f64::from_str` would also accept "inf", "NaN" and exponents.
    if !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let secs: f64 = value.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// A request count; decimals such as `"100.0"` are accepted by truncation.
fn parse_count(value: &str) -> Option<u64> {
    value
        .parse::<u64>()
        .ok()
        .or_else(|| parse_seconds(value).map(|d| d.as_secs()))
}

/// The HTTP date forms of RFC 7231 §7.1.1.1, plus RFC 2822 with a numeric zone.
fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a subset of RFC 2822.
    if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        return Some(at.with_timezone(&Utc));
    }
    // RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994").
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(value, fmt).ok())
        .map(|naive| naive.and_utc())
}

/// The generic reset: seconds, or a unix timestamp when larger than 10^9.
fn parse_generic_reset(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let secs = parse_seconds(value)?;
    if secs.as_secs_f64() > UNIX_TIMESTAMP_THRESHOLD {
        let at = DateTime::<Utc>::from_timestamp(
            i64::try_from(secs.as_secs()).ok()?,
            secs.subsec_nanos(),
        )?;
        Some(until(at, now))
    } else {
        Some(secs)
    }
}

/// A Go-style duration as OpenAI sends it: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, `250us`. A bare
/// number is taken as seconds.
fn parse_go_duration(value: &str) -> Option<Duration> {
    if let Some(secs) = parse_seconds(value) {
        return Some(secs);
    }
    let mut total = 0f64;
    let mut rest = value;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn retry_after_accepts_seconds_and_decimals() {
        assert_eq!(parse_retry_after("120", now()), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now()),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-3", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("inf", now()), None);
        assert_eq!(parse_retry_after("NaN", now()), None);
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        assert_eq!(
            parse_retry_after("Sat, 01 Mar 2025 12:00:30 GMT", now()),
            Some(secs(30))
        );
        // RFC 2822 with a numeric zone.
        assert_eq!(
            parse_retry_after("Sat, 01 Mar 2025 13:01:00 +0100", now()),
            Some(secs(60))
        );
        // Obsolete forms.
        assert_eq!(
            parse_retry_after("Saturday, 01-Mar-25 12:00:10 GMT", now()),
            Some(secs(10))
        );
        assert_eq!(
            parse_retry_after("Sat Mar  1 12:00:05 2025", now()),
            Some(secs(5))
        );
    }

    #[test]
    fn retry_after_in_the_past_is_zero() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn openai_headers_parse_with_go_durations() {
        let h = parse_rate_limit_headers(
            &[
                ("X-RateLimit-Limit-Requests", "500"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "6m0s"),
                // Token headers of the same style are not request headers.
                ("x-ratelimit-remaining-tokens", "12"),
            ],
            now(),
        );
        assert_eq!(
            h,
            RateLimitHeaders {
                limit: Some(500),
                remaining: Some(0),
                reset: Some(secs(360)),
            }
        );
    }

    #[test]
    fn go_durations_cover_every_unit() {
        assert_eq!(parse_go_duration("1s"), Some(secs(1)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_go_duration("7"), Some(secs(7)));
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("1x2s"), None);
    }

    #[test]
    fn anthropic_headers_reset_is_a_time() {
        let h = parse_rate_limit_headers(
            &[
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "49"),
                ("Anthropic-RateLimit-Requests-Reset", "2025-03-01T12:00:42Z"),
            ],
            now(),
        );
        assert_eq!(
            h,
            RateLimitHeaders {
                limit: Some(50),
                remaining: Some(49),
                reset: Some(secs(42)),
            }
        );
        let past = parse_rate_limit_headers(
            &[(
                "anthropic-ratelimit-requests-reset",
                "2025-03-01T11:00:00+00:00",
            )],
            now(),
        );
        assert_eq!(past.reset, Some(Duration::ZERO));
    }

    #[test]
    fn generic_headers_reset_is_seconds_or_a_timestamp() {
        let relative = parse_rate_limit_headers(
            &[
                ("x-ratelimit-limit", "60"),
                ("x-ratelimit-remaining", "3"),
                ("x-ratelimit-reset", "17"),
            ],
            now(),
        );
        assert_eq!(
            relative,
            RateLimitHeaders {
                limit: Some(60),
                remaining: Some(3),
                reset: Some(secs(17)),
            }
        );
        let absolute = parse_rate_limit_headers(
            &[("X-RateLimit-Reset", &(now().timestamp() + 90).to_string())],
            now(),
        );
        assert_eq!(absolute.reset, Some(secs(90)));
    }

    #[test]
    fn style_is_detected_by_headers_not_provider() {
        // Generic headers next to a lone OpenAI one: the OpenAI style wins, generic is ignored.
        let h = parse_rate_limit_headers(
            &[
                ("x-ratelimit-remaining", "9"),
                ("x-ratelimit-remaining-requests", "4"),
            ],
            now(),
        );
        assert_eq!(h.remaining, Some(4));
        assert_eq!(
            parse_rate_limit_headers(&[], now()),
            RateLimitHeaders::default()
        );
        let junk = parse_rate_limit_headers(&[("x-ratelimit-limit", "lots")], now());
        assert_eq!(junk.limit, None);
    }

    #[test]
    fn limit_kind_follows_the_spec() {
        let spent = RateLimitHeaders {
            remaining: Some(0),
            ..Default::default()
        };
        let some_left = RateLimitHeaders {
            remaining: Some(5),
            ..Default::default()
        };
        let none = RateLimitHeaders::default();
        assert_eq!(limit_kind(&spent, None, 10), LimitKind::Rpm);
        assert_eq!(limit_kind(&some_left, None, 2), LimitKind::Concurrent);
        assert_eq!(limit_kind(&none, Some(secs(30)), 3), LimitKind::Concurrent);
        assert_eq!(limit_kind(&none, Some(secs(31)), 3), LimitKind::Unknown);
        assert_eq!(limit_kind(&none, None, 1), LimitKind::Unknown);
        assert_eq!(limit_kind(&some_left, None, 0), LimitKind::Unknown);
    }

    #[test]
    fn cooldown_honours_retry_after_reset_and_max() {
        let default = secs(10);
        let max = secs(300);
        let none = RateLimitHeaders::default();
        assert_eq!(cooldown(None, &none, default, max), default);
        assert_eq!(cooldown(Some(secs(2)), &none, default, max), secs(2));
        assert_eq!(cooldown(Some(secs(900)), &none, default, max), max);
        let spent = RateLimitHeaders {
            remaining: Some(0),
            reset: Some(secs(45)),
            ..Default::default()
        };
        assert_eq!(cooldown(Some(secs(2)), &spent, default, max), secs(45));
        assert_eq!(cooldown(None, &spent, default, max), secs(45));
        // A reset only matters when the window is spent.
        let left = RateLimitHeaders {
            remaining: Some(3),
            reset: Some(secs(45)),
            ..Default::default()
        };
        assert_eq!(cooldown(Some(secs(2)), &left, default, max), secs(2));
    }

    proptest! {
        #[test]
        fn cooldown_stays_between_the_hint_and_max(
            retry in proptest::option::of(0u64..10_000),
            remaining in proptest::option::of(0u64..3),
            reset in proptest::option::of(0u64..10_000),
            default in 0u64..1_000,
            max in 0u64..1_000,
        ) {
            let headers = RateLimitHeaders { limit: None, remaining, reset: reset.map(secs) };
            let got = cooldown(retry.map(secs), &headers, secs(default), secs(max));
            prop_assert!(got <= secs(max));
            let floor = retry.map(secs).unwrap_or(secs(default));
            prop_assert!(got >= floor.min(secs(max)));
        }

        #[test]
        fn integer_retry_after_round_trips(s in 0u64..1_000_000_000) {
            prop_assert_eq!(parse_retry_after(&s.to_string(), now()), Some(secs(s)));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_retry_after(&s, now());
            let _ = parse_go_duration(&s);
            let _ = parse_rate_limit_headers(&[("x-ratelimit-reset", &s)], now());
        }
    }
}
