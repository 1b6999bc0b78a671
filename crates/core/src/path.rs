//! URL paths as the API server routes them. Authorization must read a request's path exactly
//! as the router does, or a request could be checked as one object and served as another;
//! both use [`segments`].

/// The non-empty `/`-separated segments of `path` after `prefix`, each percent-decoded
/// (invalid UTF-8 replaced). `//a//b` gives `["a", "b"]`; `%6eamespaces` gives `namespaces`.
pub fn segments(path: &str, prefix: &str) -> Vec<String> {
    path.strip_prefix(prefix)
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_split_and_decoded() {
        assert_eq!(
            segments("/apis/x//%6eamespaces/a%2Fb/", "/apis"),
            vec!["x", "namespaces", "a/b"]
        );
        assert!(segments("/other", "/apis").is_empty());
        assert_eq!(segments("/a/b", ""), vec!["a", "b"]);
    }
}
