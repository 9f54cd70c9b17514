//! CPU time and resident memory from `/proc`, for the load generator's own threads and for the
//! server it measures (`--server-pid`).

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds from a `/proc/.../stat` file.
pub fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds the calling thread has used, from the thread's CPU clock (exact; `/proc`'s
/// `stat` counts in 10 ms units).
pub fn thread_cpu_seconds() -> Option<f64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return cpu_seconds("/proc/thread-self/stat");
    }
    Some(now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
}

/// CPU seconds a process has used: its CPU-time clock (`clock_getcpuclockid`), the scheduler's
/// nanosecond count over every thread it has had, ended ones included; else `/proc/PID/stat`.
/// The latter counts in 10 ms units: a run whose server uses 0.14 s (200 long-pollers for 5 s)
/// would be known to ±7 % only.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    process_clock_seconds(pid).or_else(|| cpu_seconds(&format!("/proc/{pid}/stat")))
}

fn process_clock_seconds(pid: u32) -> Option<f64> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid, writable clockid_t for the call.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
}

/// Resident memory of a process in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(super::rss_bytes(pid).unwrap() > 0);
        assert!(super::process_cpu_seconds(pid).is_some());
        // Both clocks count work done: spin until each has moved (they are exact, not 10 ms
        // ticks, so a few milliseconds of work show).
        let (process0, thread0) = (
            super::process_cpu_seconds(pid).unwrap(),
            super::thread_cpu_seconds().unwrap(),
        );
        let mut x = 0u64;
        while super::thread_cpu_seconds().unwrap() < thread0 + 0.002 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let moved = super::thread_cpu_seconds().unwrap() - thread0;
        assert!((0.002..1.0).contains(&moved), "thread clock moved {moved}");
        assert!(super::process_cpu_seconds(pid).unwrap() > process0);
    }
}
