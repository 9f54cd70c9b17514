//! What every bench file shares: the measurement settings, short enough that `cargo bench` runs in
//! a few minutes on the project's 2-core machines.
use std::time::Duration;

use criterion::Criterion;

pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}
