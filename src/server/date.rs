//! The `Date` header value, formatted once per second rather than once per response.
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub(crate) struct DateCache {
    second: u64,
    value: String,
}

impl DateCache {
    /// Reformats the value when the wall-clock second has changed.
    pub(crate) fn refresh(&mut self) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.value.is_empty() {
            self.second = second;
            self.value = httpdate::fmt_http_date(now);
        }
    }

    pub(crate) fn value(&self) -> &str {
        &self.value
    }
}
