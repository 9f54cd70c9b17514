//! The process's limits. The file-descriptor limit (`RLIMIT_NOFILE`): every connection is a descriptor, so
//! the limit decides how many clients the server can hold, and running into it must end in a
//! `503`, not in silence. std has no call for resource limits, hence `libc` (already in the
//! dependency tree through mio and socket2).

/// Raises the soft limit on open files to the hard limit (the usual soft default, 1 024, is far
/// below what a push server holds) and returns the soft limit in force, or `None` when it cannot
/// be read.
pub(super) fn raise_nofile() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the `rlimit` we own; RLIMIT_NOFILE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        log::warn!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the `rlimit` we pass; raising the soft limit up to the hard
        // one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            // An unlimited hard limit is refused (the kernel caps it at fs.nr_open).
            log::debug!(
                "cannot raise the open-file limit to {}: {}",
                limit.rlim_max,
                std::io::Error::last_os_error()
            );
        }
    }
    Some(limit.rlim_cur)
}

/// Makes every thread allocate from one malloc arena (glibc only). glibc gives each thread an
/// arena of its own and memory freed to one arena is not reused by another, so a workload that
/// moves between event loops (a round of publishes on one loop's connections, the next on
/// another's) can hold its peak once per loop. The hub's budget is meant to bound real memory;
/// with one arena it does, at the price of a lock on allocations larger than the per-thread cache
/// (the delivery path makes none).
pub(super) fn share_one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tuning parameter; it is called before the loops'
    // threads start, and a failure leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
