//! What a request asks to do, computed from its method and path the way Kubernetes'
//! `RequestInfoFactory` does, so that SubjectAccessReviews match what RBAC rules expect.

use crate::review::{NonResourceAttributes, ResourceAttributes};

/// The authorization attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestAttributes {
    /// The request path without query string.
    pub path: String,
    /// The lowercase HTTP method, the verb of non-resource requests.
    pub method_verb: String,
    /// Set for requests under `/apis/<group>/<version>/...` and `/api/<version>/...` that name
    /// a resource; `None` for discovery documents and other paths.
    pub resource: Option<ResourceAttributes>,
}

impl RequestAttributes {
    /// Computes the attributes of `method` on `path_and_query`.
    ///
    /// The path is read as the server routes it: split at `/`, empty segments skipped, each
    /// segment percent-decoded on its own (so `%2F` stays inside its segment). A request
    /// spelling a route with escapes or doubled slashes is therefore authorized as the route
    /// it reaches. `path` keeps the request's own spelling for non-resource requests.
    ///
    /// For the metrics APIs: `/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/*/m`
    /// is verb `get`, resource `pods`, name `*`, subresource `m`, namespace `ns`;
    /// `/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/m` is verb `list`, resource `m`.
    pub fn from_request(method: &http::Method, path_and_query: &str) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_and_query, ""),
        };
        let method_verb = method.as_str().to_ascii_lowercase();
        let mut attrs = RequestAttributes {
            path: path.to_string(),
            method_verb: method_verb.clone(),
            resource: None,
        };
        let decoded = promhpa_core::path::segments(path, "");
        let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
        if parts.len() < 3 {
            return attrs;
        }
        let (group, rest) = match parts[0] {
            "api" => ("", &parts[1..]),
            "apis" => {
                if parts.len() < 4 {
                    return attrs;
                }
                (parts[1], &parts[2..])
            }
            _ => return attrs,
        };
        let version = rest[0];
        let mut rest = &rest[1..];
        let mut res = ResourceAttributes {
            group: group.to_string(),
            version: version.to_string(),
            ..ResourceAttributes::default()
        };
        let mut verb = match method.as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
        if let Some(special @ ("watch" | "proxy")) = rest.first().copied() {
            if rest.len() < 2 {
                // `/apis/<group>/<version>/watch` alone names no resource.
                return attrs;
            }
            verb = special.to_string();
            rest = &rest[1..];
        }
        if rest.first() == Some(&"namespaces") {
            if let Some(ns) = rest.get(1) {
                res.namespace = (*ns).to_string();
                if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                    rest = &rest[2..];
                }
            }
        }
        if rest.len() >= 3 && verb != "proxy" {
            res.subresource = rest[2].to_string();
        }
        if rest.len() >= 2 {
            res.name = rest[1].to_string();
        }
        if let Some(resource) = rest.first() {
            res.resource = (*resource).to_string();
        }
        if res.name.is_empty() && verb == "get" {
            // As Kubernetes converts a query parameter to a bool: the first `watch` value,
            // true unless it is `0` or (in any case) `false`.
            let watch = query
                .split('&')
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .find(|(k, _)| *k == "watch")
                .is_some_and(|(_, v)| v != "0" && !v.eq_ignore_ascii_case("false"));
            verb = if watch { "watch" } else { "list" }.to_string();
        }
        if res.name.is_empty() && verb == "delete" {
            verb = "deletecollection".to_string();
        }
        res.verb = verb;
        attrs.resource = Some(res);
        attrs
    }

    /// The verb checked: the resource verb, or the lowercase method for other paths.
    pub fn verb(&self) -> &str {
        match &self.resource {
            Some(r) => &r.verb,
            None => &self.method_verb,
        }
    }

    pub(crate) fn non_resource(&self) -> NonResourceAttributes {
        NonResourceAttributes {
            path: self.path.clone(),
            verb: self.method_verb.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn res(method: Method, path: &str) -> ResourceAttributes {
        RequestAttributes::from_request(&method, path)
            .resource
            .unwrap_or_else(|| panic!("{path} should be a resource request"))
    }

    #[test]
    fn custom_metrics_object_and_selector_paths() {
        let r = res(
            Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/http_requests?labelSelector=app%3Dweb",
        );
        assert_eq!(
            r,
            ResourceAttributes {
                namespace: "shop".into(),
                verb: "get".into(),
                group: "custom.metrics.k8s.io".into(),
                version: "v1beta1".into(),
                resource: "pods".into(),
                subresource: "http_requests".into(),
                name: "*".into(),
            }
        );
        let r = res(
            Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/web/p99",
        );
        assert_eq!(
            (r.resource.as_str(), r.name.as_str()),
            ("deployments.apps", "web")
        );
        assert_eq!(r.subresource, "p99");
        let r = res(
            Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/nodes/*/load",
        );
        assert_eq!(r.namespace, "");
        assert_eq!(
            (r.resource.as_str(), r.subresource.as_str()),
            ("nodes", "load")
        );
    }

    #[test]
    fn namespace_metrics_and_external_metrics() {
        let r = res(
            Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/metrics/queue_length",
        );
        assert_eq!(
            (r.resource.as_str(), r.name.as_str()),
            ("metrics", "queue_length")
        );
        assert_eq!(r.verb, "get");
        let r = res(
            Method::GET,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth?labelSelector=q%3Dx",
        );
        assert_eq!(r.resource, "queue_depth");
        assert_eq!(r.verb, "list");
        assert_eq!(r.name, "");
        assert_eq!(r.namespace, "shop");
    }

    #[test]
    fn discovery_and_health_are_non_resource() {
        for path in [
            "/apis/custom.metrics.k8s.io/v1beta1",
            "/apis",
            "/healthz",
            "/openapi/v2",
        ] {
            let a = RequestAttributes::from_request(&Method::GET, path);
            assert_eq!(a.resource, None, "{path}");
            assert_eq!(a.verb(), "get");
        }
    }

    #[test]
    fn attributes_follow_the_segments_the_server_routes_on() {
        // The server percent-decodes each segment and skips empty ones; a request that
        // spells the same route differently must be authorized as that route.
        let plain = res(
            Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/victim/pods/*/m",
        );
        for path in [
            "/apis/custom.metrics.k8s.io/v1beta1/%6eamespaces/victim/pods/*/m",
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/%76ictim/pods/%2A/m",
            "/apis/custom.metrics.k8s.io/v1beta1//namespaces/victim//pods/*/m",
            "//apis/custom.metrics.k8s.io//v1beta1/namespaces/victim/pods/*/m/",
            "/%61pis/custom.metrics.k8s.io/v1beta1/namespaces/victim/pods/*/m",
        ] {
            assert_eq!(res(Method::GET, path), plain, "{path}");
        }
        let ext = res(
            Method::GET,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/victim/%71ueue?x=1",
        );
        assert_eq!(
            (ext.namespace.as_str(), ext.resource.as_str()),
            ("victim", "queue")
        );
        // A decoded slash stays inside its segment, as it does for the server.
        let r = res(
            Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/a%2Fb/pods/*/m",
        );
        assert_eq!((r.namespace.as_str(), r.resource.as_str()), ("a/b", "pods"));
    }

    #[test]
    fn watch_is_any_first_watch_value_but_false_or_zero() {
        let verb = |q: &str| res(Method::GET, &format!("/api/v1/namespaces/a/pods?{q}")).verb;
        for q in [
            "watch=true",
            "watch=TRUE",
            "watch=1",
            "watch",
            "watch=yes",
            "a=b&watch=True",
        ] {
            assert_eq!(verb(q), "watch", "{q}");
        }
        for q in [
            "watch=false",
            "watch=False",
            "watch=0",
            "watch=0&watch=1",
            "x=watch",
        ] {
            assert_eq!(verb(q), "list", "{q}");
        }
    }

    #[test]
    fn verbs_from_method_and_query() {
        assert_eq!(
            res(Method::GET, "/api/v1/namespaces/a/pods?watch=true").verb,
            "watch"
        );
        assert_eq!(
            res(Method::GET, "/api/v1/watch/namespaces/a/pods").verb,
            "watch"
        );
        assert_eq!(
            res(Method::DELETE, "/api/v1/namespaces/a/pods").verb,
            "deletecollection"
        );
        assert_eq!(
            res(Method::POST, "/api/v1/namespaces/a/pods").verb,
            "create"
        );
        let ns = res(Method::GET, "/api/v1/namespaces/a");
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_str()),
            ("namespaces", "a")
        );
    }
}
