//! Giving memory back after a burst. glibc's allocator keeps what the process freed in its
//! arenas for reuse: after a flood of connections comes and goes, the memory they used stays
//! resident until the next flood. `malloc_trim` asks it to return the free pages of every
//! arena. promhpa calls it when the number of open connections has fallen well below its
//! recent peak, when resident memory has grown well past what it was after the last call,
//! and at most once a minute when it stands a little above the level earlier calls brought
//! it back to (the buffers of a burst of requests in flight behind a slow backend, or of a
//! few connections that left many answers unread; a call that finds the memory in use
//! raises that level); otherwise never, since it briefly locks each arena. Built with jemalloc
//! (`--features jemalloc`, which turns on this crate's `jemalloc` feature), whose background
//! thread purges by itself, this does nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::SelfMetrics;

/// How often the conditions are checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Connections closed since the peak that make a trim worth it.
const CONNECTIONS_GONE: u64 = 256;
/// Growth of resident memory over the level after the last trim that makes one worth it.
const GROWTH: u64 = 32 << 20;
/// Smaller growth (this, or 5 % of the level if more) returned at most once per
/// [`CREEP_EVERY`].
const CREEP: u64 = 1 << 20;
const CREEP_EVERY: Duration = Duration::from_secs(60);

/// Why a trim is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Many connections have gone since the peak.
    Emptied,
    /// Resident memory grew well past the level after the last trim.
    Grew,
    /// Resident memory stands a little above the floor (at most once a minute).
    Crept,
}

/// Whether a trim is due, and why: `open` connections now, `peak` the most seen since the
/// last trim, `rss` the resident bytes now, `after_last` those right after the last trim,
/// `floor` the level memory is expected to come back to, and `since_last` the time since
/// the last trim. Creeping is measured from the floor: a trim in the middle of a flood
/// leaves a high `after_last`, and the memory the flood frees once it ends must still be
/// given back.
pub fn due(
    open: u64,
    peak: u64,
    rss: u64,
    after_last: u64,
    floor: u64,
    since_last: Duration,
) -> Option<Due> {
    if peak >= CONNECTIONS_GONE && open <= peak / 2 && peak - open >= CONNECTIONS_GONE {
        Some(Due::Emptied)
    } else if rss > after_last.saturating_add(GROWTH) {
        Some(Due::Grew)
    } else if since_last >= CREEP_EVERY && rss > floor.saturating_add(creep(floor)) {
        Some(Due::Crept)
    } else {
        None
    }
}

/// Growth over `level` worth returning at most once a minute.
fn creep(level: u64) -> u64 {
    CREEP.max(level / 20)
}

/// The floor after a trim for `why` took resident memory from `before` to `after`: a trim
/// for creeping that gave back next to nothing finds memory in use (caches filled since
/// start), which becomes the level to come back to, so that it is not tried every minute;
/// otherwise the least level seen.
pub fn next_floor(floor: u64, why: Due, before: u64, after: u64) -> u64 {
    if why == Due::Crept && before.saturating_sub(after) < creep(after) {
        after
    } else {
        floor.min(after)
    }
}

/// Resident memory of this process in bytes (`VmRSS` of /proc/self/status).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointer and touches only glibc's own free lists, under
    // the arenas' locks; it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc"))))]
fn trim() -> bool {
    false
}

/// Whether this build's allocator keeps freed memory until asked (glibc).
const fn needed() -> bool {
    cfg!(all(
        target_os = "linux",
        target_env = "gnu",
        not(feature = "jemalloc")
    ))
}

/// Watch open connections and resident memory, and trim when [`due`]. Runs forever.
pub async fn run(metrics: Arc<SelfMetrics>) {
    if !needed() {
        return;
    }
    let mut after_last = resident_bytes().unwrap_or(0);
    let mut floor = after_last;
    let mut last = tokio::time::Instant::now();
    let mut peak = 0;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let open = metrics.open_connections();
        peak = peak.max(open);
        let Some(rss) = resident_bytes() else {
            continue;
        };
        let Some(why) = due(open, peak, rss, after_last, floor, last.elapsed()) else {
            continue;
        };
        let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
        after_last = resident_bytes().unwrap_or(rss);
        floor = next_floor(floor, why, rss, after_last);
        last = tokio::time::Instant::now();
        tracing::debug!(
            before_bytes = rss,
            after_bytes = after_last,
            released,
            "returned freed memory to the system"
        );
        peak = open;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_follows_a_flood_or_growth_only() {
        let soon = Duration::from_secs(5);
        let later = Duration::from_secs(60);
        // Steady state: nothing.
        assert_eq!(due(10, 12, 40 << 20, 30 << 20, 30 << 20, soon), None);
        // A flood of 4,000 connections has gone: trim.
        assert_eq!(
            due(20, 4000, 150 << 20, 30 << 20, 30 << 20, soon),
            Some(Due::Emptied)
        );
        // Still half open: wait.
        assert_eq!(due(2500, 4000, 150 << 20, 140 << 20, 30 << 20, soon), None);
        // Memory grew 32 MiB past the last level without connections (a big relist).
        assert_eq!(
            due(5, 5, 80 << 20, 40 << 20, 40 << 20, soon),
            Some(Due::Grew)
        );
        assert_eq!(due(5, 5, 60 << 20, 40 << 20, 40 << 20, soon), None);
        // It crept 3 MiB past a 20 MiB level (a burst of requests in flight): returned, but
        // not more than once a minute, and not for less than 5 % of the level.
        assert_eq!(
            due(5, 5, 23 << 20, 20 << 20, 20 << 20, later),
            Some(Due::Crept)
        );
        assert_eq!(due(5, 5, 23 << 20, 20 << 20, 20 << 20, soon), None);
        assert_eq!(
            due(5, 5, 20 << 20 | 1 << 19, 20 << 20, 20 << 20, later),
            None
        );
        assert_eq!(due(5, 5, 82 << 20, 80 << 20, 80 << 20, later), None);
        assert_eq!(
            due(5, 5, 85 << 20, 80 << 20, 80 << 20, later),
            Some(Due::Crept)
        );
        // A trim in the middle of 40 connections' flood left 776 MiB; once they are gone
        // (too few for the emptied rule) the memory they freed is returned within a minute,
        // as it stands well above the 20 MiB the process ran in before.
        assert_eq!(due(1, 40, 776 << 20, 776 << 20, 20 << 20, soon), None);
        assert_eq!(
            due(1, 40, 776 << 20, 776 << 20, 20 << 20, later),
            Some(Due::Crept)
        );
        assert_eq!(
            next_floor(20 << 20, Due::Crept, 776 << 20, 25 << 20),
            20 << 20
        );
        // A flood trimmed as it grew keeps the floor it had, for the fall afterwards.
        assert_eq!(
            next_floor(20 << 20, Due::Grew, 400 << 20, 390 << 20),
            20 << 20
        );
        // A process that settled at 60 MiB (caches filled since it started at 20): one trim
        // finds the memory in use, and the floor moves up to it, so no trim follows every
        // minute.
        let floor = next_floor(20 << 20, Due::Crept, 60 << 20, 59 << 20);
        assert_eq!(floor, 59 << 20);
        assert_eq!(due(5, 5, 60 << 20, 59 << 20, floor, later), None);
    }

    #[test]
    fn resident_memory_is_read() {
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }
}
