//! The `Date` header value (IMF-fixdate, RFC 9110 §5.6.7), formatted once per second rather than
//! once per response. The caller supplies the wall-clock time.
use std::time::{SystemTime, UNIX_EPOCH};

/// The `Date` header value for the current second, reformatted only when the second changes.
#[derive(Debug, Default)]
pub struct DateCache {
    second: u64,
    value: String,
}

impl DateCache {
    /// Reformats the value when the wall-clock second of `now` differs from the last one.
    pub fn refresh(&mut self, now: SystemTime) {
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.value.is_empty() {
            self.second = second;
            self.value = httpdate::fmt_http_date(now);
        }
    }

    /// The current value.
    pub fn value(&self) -> &str {
        &self.value
    }
}
