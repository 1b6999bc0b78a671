//! The process metrics every Prometheus client library exports (`process_*`), read from
//! /proc when `/metrics` is scraped, and `promhpa_build_info`: restarts, memory growth,
//! CPU and file descriptors can be alerted on as for any other component.

use std::fmt::Write as _;

/// Clock ticks per second of /proc's CPU times: Linux reports them in USER_HZ, which is 100
/// on every architecture Kubernetes runs on (Go's procfs assumes it too).
const TICKS_PER_SECOND: f64 = 100.0;

/// Appends the `process_*` metrics (those /proc can tell) and `promhpa_build_info`.
pub fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP promhpa_build_info The version promhpa was built as.\n# TYPE promhpa_build_info gauge\npromhpa_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Field numbers as proc(5) gives them (state is field 3, the first after the name).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
            (utime + stime) as f64 / TICKS_PER_SECOND
        );
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time()) {
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}",
            boot as f64 + start as f64 / TICKS_PER_SECOND
        );
    }
    if let Some(vsize) = field(23) {
        let _ = writeln!(
            out,
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {vsize}"
        );
    }
    if let Some(rss) = crate::server::memory::resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}",
            fds.count()
        );
    }
    if let Some(max) = max_open_files() {
        let _ = writeln!(
            out,
            "# HELP process_max_fds Maximum number of open file descriptors.\n# TYPE process_max_fds gauge\nprocess_max_fds {max}"
        );
    }
}

/// When the machine booted, in seconds since the epoch (`btime` of /proc/stat).
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit on open files (`Max open files` of /proc/self/limits).
fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_metrics_are_read_from_proc() {
        let mut out = String::new();
        super::render(&mut out);
        for name in [
            "promhpa_build_info{version=",
            "process_cpu_seconds_total ",
            "process_start_time_seconds ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
        ] {
            assert!(out.contains(name), "{name} missing:\n{out}");
        }
        let start: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        assert!(start > 1.6e9 && start <= now + 1.0, "{start} vs {now}");
    }
}
