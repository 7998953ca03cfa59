//! HubSpot's rate-limit headers. The budget of a portal is shared by every Lambda that talks to
//! it, so callers pace themselves from what HubSpot reports rather than from their own counts.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

const MAX: &str = "x-hubspot-ratelimit-max";
const REMAINING: &str = "x-hubspot-ratelimit-remaining";
const INTERVAL_MS: &str = "x-hubspot-ratelimit-interval-milliseconds";
const DAILY: &str = "x-hubspot-ratelimit-daily";
const DAILY_REMAINING: &str = "x-hubspot-ratelimit-daily-remaining";

/// What one response said about the portal's request budget. Each field is present only when
/// its header was: OAuth calls carry no daily headers, search responses carry none at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per interval (`X-HubSpot-RateLimit-Max`).
    pub max: Option<u64>,
    /// Requests left in the current interval (`X-HubSpot-RateLimit-Remaining`).
    pub remaining: Option<u64>,
    /// The rolling interval (`X-HubSpot-RateLimit-Interval-Milliseconds`, usually 10 s).
    pub interval: Option<Duration>,
    /// Requests allowed per day (`X-HubSpot-RateLimit-Daily`).
    pub daily: Option<u64>,
    /// Requests left today (`X-HubSpot-RateLimit-Daily-Remaining`).
    pub daily_remaining: Option<u64>,
}

impl RateLimit {
    /// Reads the headers; `None` when the response carried none of them.
    pub fn from_headers(headers: &HeaderMap) -> Option<RateLimit> {
        let limit = RateLimit {
            max: number(headers, MAX),
            remaining: number(headers, REMAINING),
            interval: number(headers, INTERVAL_MS).map(Duration::from_millis),
            daily: number(headers, DAILY),
            daily_remaining: number(headers, DAILY_REMAINING),
        };
        (limit != RateLimit::default()).then_some(limit)
    }

    /// True when the interval's budget is spent: the next call would most likely get a 429.
    pub fn is_exhausted(&self) -> bool {
        self.remaining == Some(0) || self.daily_remaining == Some(0)
    }
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Retry-After` in its delta-seconds form (HubSpot's 477 and 429 use it). An HTTP date is
/// turned into the time left until then.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(value, &format).ok()?;
    let left = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn reads_hubspot_headers_whatever_their_case() {
        let h = headers(&[
            ("X-HubSpot-RateLimit-Max", "110"),
            ("X-HubSpot-RateLimit-Remaining", "109"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ("X-HubSpot-RateLimit-Daily", "250000"),
            ("X-HubSpot-RateLimit-Daily-Remaining", "249999"),
        ]);
        let limit = RateLimit::from_headers(&h).unwrap();
        assert_eq!(limit.max, Some(110));
        assert_eq!(limit.remaining, Some(109));
        assert_eq!(limit.interval, Some(Duration::from_secs(10)));
        assert_eq!(limit.daily, Some(250_000));
        assert_eq!(limit.daily_remaining, Some(249_999));
        assert!(!limit.is_exhausted());
    }

    #[test]
    fn oauth_responses_have_no_daily_headers() {
        let h = headers(&[("x-hubspot-ratelimit-max", "110"), ("x-hubspot-ratelimit-remaining", "0")]);
        let limit = RateLimit::from_headers(&h).unwrap();
        assert_eq!(limit.daily, None);
        assert!(limit.is_exhausted());
    }

    #[test]
    fn no_headers_means_no_reading_and_garbage_is_ignored() {
        assert_eq!(RateLimit::from_headers(&HeaderMap::new()), None);
        assert_eq!(RateLimit::from_headers(&headers(&[("x-hubspot-ratelimit-max", "lots")])), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after(&headers(&[("retry-after", "10")])), Some(Duration::from_secs(10)));
        assert_eq!(retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])), Some(Duration::ZERO));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
