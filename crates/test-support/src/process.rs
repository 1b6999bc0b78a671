//! Figures of a running process from `/proc`, for tests and benches that watch memory.

/// A `kB` figure of `/proc/<of>/status` (`of`: a pid, or `self`), such as `VmRSS:` or
/// `VmHWM:` (the field name with its colon); `None` when the process or field is not there.
pub fn status_kib(of: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{of}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size_and_an_unknown_field_is_none() {
        let rss = status_kib("self", "VmRSS:").unwrap();
        assert!(rss > 0);
        assert_eq!(
            status_kib(&std::process::id().to_string(), "VmRSS:").map(|_| ()),
            Some(())
        );
        assert_eq!(status_kib("self", "NoSuchField:"), None);
    }
}
