//! The driver's own rules that need no socket.
use super::*;

#[test]
fn a_throttled_log_speaks_once_per_interval_and_counts_the_rest() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut log = Throttle::default();
    assert_eq!(log.allow(t0, second), Some(0));
    for i in 1..10 {
        assert_eq!(log.allow(t0 + i * ACCEPT_BACKOFF, second), None);
    }
    assert_eq!(log.allow(t0 + second, second), Some(9));
    assert_eq!(log.allow(t0 + second, second), None);
}
