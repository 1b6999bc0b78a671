//! Discovery: the `APIGroupList` at `/apis`, each group's `APIGroup`, the
//! `APIResourceList` of the metrics each version serves (with those of the server
//! forwarded to, when forwarding is on), and `/version`.

use axum::extract::State;
use axum::response::Response;

use crate::registry::Api;
use crate::request::json;
use crate::state::AppState;
use crate::types::*;

/// `/apis`: the groups served, metrics.k8s.io among them with `resourceRules`.
pub(super) async fn apis(State(state): State<AppState>) -> Response {
    let mut groups = vec![custom_group(), external_group()];
    if state.registry.rules().resource.is_some() {
        groups.push(crate::resource::resource_group());
    }
    json(&ApiGroupList {
        kind: "APIGroupList",
        api_version: "v1",
        groups,
    })
}

/// The `APIGroup` of custom.metrics.k8s.io: v1beta2, preferred, and v1beta1.
pub(super) fn custom_group() -> ApiGroup {
    ApiGroup {
        kind: "APIGroup",
        api_version: "v1",
        name: CUSTOM_GROUP.into(),
        versions: vec![gv(CUSTOM_GROUP, "v1beta2"), gv(CUSTOM_GROUP, "v1beta1")],
        preferred_version: gv(CUSTOM_GROUP, "v1beta2"),
    }
}

/// The `APIGroup` of external.metrics.k8s.io: v1beta1.
pub(super) fn external_group() -> ApiGroup {
    ApiGroup {
        kind: "APIGroup",
        api_version: "v1",
        name: EXTERNAL_GROUP.into(),
        versions: vec![gv(EXTERNAL_GROUP, "v1beta1")],
        preferred_version: gv(EXTERNAL_GROUP, "v1beta1"),
    }
}

fn gv(group: &str, version: &str) -> GroupVersionForDiscovery {
    GroupVersionForDiscovery {
        group_version: format!("{group}/{version}"),
        version: version.to_string(),
    }
}

/// A discovery list: `own`, with the resources of the server `api` forwards to.
pub(super) async fn resources(
    state: &AppState,
    api: Api,
    path: &str,
    headers: &axum::http::HeaderMap,
    own: ApiResourceList,
) -> Response {
    match &state.forward {
        Some(f) if f.forwards(api, headers) => f.discovery(api, path, &own).await,
        _ => json(&own),
    }
}

/// The custom metrics discovery found, one `{resource}/{metric}` each, for `version`.
pub(super) fn custom_resources(state: &AppState, version: &str) -> ApiResourceList {
    let snap = state.registry.snapshot();
    let objects = snap.namespaces.values().flat_map(|nr| nr.custom.iter());
    resource_list(
        format!("{CUSTOM_GROUP}/{version}"),
        "MetricValueList",
        snap.custom
            .iter()
            .chain(objects)
            .map(|((gr, metric), e)| (format!("{gr}/{metric}"), e.namespaced)),
    )
}

/// The external metrics discovery found.
pub(super) fn external_resources(state: &AppState) -> ApiResourceList {
    let snap = state.registry.snapshot();
    let objects = snap.namespaces.values().flat_map(|nr| nr.external.iter());
    resource_list(
        format!("{EXTERNAL_GROUP}/v1beta1"),
        "ExternalMetricValueList",
        snap.external
            .iter()
            .chain(objects)
            .map(|(metric, e)| (metric.clone(), e.namespaced)),
    )
}

/// The `APIResourceList` of `group_version`: one `kind` resource per (name, namespaced),
/// sorted by name, each name once.
fn resource_list(
    group_version: String,
    kind: &'static str,
    named: impl Iterator<Item = (String, bool)>,
) -> ApiResourceList {
    let mut resources: Vec<ApiResource> = named
        .map(|(name, namespaced)| ApiResource {
            name,
            singular_name: String::new(),
            namespaced,
            kind,
            verbs: vec!["get"],
        })
        .collect();
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    resources.dedup_by(|a, b| a.name == b.name);
    ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version,
        resources,
    }
}

/// `/version`: promhpa's version, in the form (and field order) of Kubernetes' own
/// `version.Info`, the platform named as Go names it (`linux/amd64`).
pub(super) async fn version() -> Response {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Info {
        major: &'static str,
        minor: &'static str,
        git_version: String,
        git_commit: &'static str,
        git_tree_state: &'static str,
        build_date: &'static str,
        go_version: &'static str,
        compiler: &'static str,
        platform: String,
    }
    let v = env!("CARGO_PKG_VERSION");
    let mut parts = v.split('.');
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    json(&Info {
        major: parts.next().unwrap_or("0"),
        minor: parts.next().unwrap_or("0"),
        git_version: format!("v{v}"),
        git_commit: "",
        git_tree_state: "",
        build_date: "",
        go_version: "",
        compiler: "rustc",
        platform: format!("{os}/{arch}"),
    })
}
