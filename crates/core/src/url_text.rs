//! URLs as logs and error messages show them: a password given in one (a Prometheus URL with
//! `user:password@`, say) is shown as `xxxxx`, as Go's `url.URL.Redacted` shows it, whether
//! or not the rest of the URL parses.

/// `url` with the password of its userinfo, if it has one, replaced by `xxxxx`. Works on the
/// text, so that a URL refused for a bad port or scheme is shown without its password too.
pub fn redacted(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    // The authority ends where the path, query or fragment begins.
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let Some(at) = url[start..end].rfind('@').map(|i| start + i) else {
        return url.to_string();
    };
    match url[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:xxxxx{}", &url[..colon], &url[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn only_the_password_is_hidden() {
        for (given, shown) in [
            (
                "https://admin:s3cret@prom:9090/api",
                "https://admin:xxxxx@prom:9090/api",
            ),
            // Unparseable ports and schemes are hidden all the same.
            (
                "htps://admin:s3cret@prom:99999",
                "htps://admin:xxxxx@prom:99999",
            ),
            // A password may hold `@` and `:`; the last `@` ends the userinfo.
            ("https://a:p@ss:w@host/", "https://a:xxxxx@host/"),
            ("https://admin@prom:9090", "https://admin@prom:9090"),
            ("https://admin:@prom", "https://admin:xxxxx@prom"),
            ("https://prom:9090/a@b:c", "https://prom:9090/a@b:c"),
            ("https://prom?q=a:b@c", "https://prom?q=a:b@c"),
            ("https://prom#a:b@c", "https://prom#a:b@c"),
            ("prom:9090", "prom:9090"),
            ("", ""),
        ] {
            assert_eq!(redacted(given), shown, "{given}");
        }
    }
}
