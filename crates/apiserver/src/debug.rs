//! The operator's debug view, under `/debug/promhpa/` and authenticated and authorized like
//! every other path (a SubjectAccessReview for `get` on the non-resource URL), so it is read
//! the way the metrics APIs are: `kubectl get --raw /debug/promhpa/rules` through the
//! aggregator's service proxy, or directly.
//!
//! - `rules`: per rule of the rule file, its queries, the metrics its discovery found, when
//!   its last relist ran and succeeded, and the error of the last one when it failed.
//! - `query?path=/apis/...`: for a metrics-API path (with its query string), the rule that
//!   serves it and the PromQL promhpa would send, without sending it.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use promhpa_core::lookup::{GroupResource, LookupError};
use promhpa_core::path::segments;
use promhpa_rules::Rule;
use serde::Serialize;

use crate::error::ApiError;
use crate::request::{json, parse_selector, query_params};
use crate::state::AppState;
use crate::types::rfc3339;

/// One rule as the debug view shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleView {
    path: String,
    origin: String,
    series_query: String,
    metrics_query: String,
    /// `name (address)` of the backend the rule reads from.
    backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    broken: Option<String>,
    /// Served metrics: `resource/metric` for custom rules, the name for external ones.
    metrics: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_relist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_success: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

fn time(seconds: f64) -> Option<String> {
    (seconds > 0.0).then(|| rfc3339((seconds * 1000.0) as i64))
}

/// `GET /debug/promhpa/rules`.
pub async fn rules(State(state): State<AppState>) -> Response {
    let snap = state.registry.snapshot();
    let relists = state.metrics.rule_relists();
    let mut served: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((gr, metric), e) in &snap.custom {
        if let Some(r) = snap.rules.custom.get(e.rule) {
            served
                .entry(r.path().to_string())
                .or_default()
                .push(format!("{gr}/{metric}"));
        }
    }
    for (metric, e) in &snap.external {
        if let Some(r) = snap.rules.external.get(e.rule) {
            served
                .entry(r.path().to_string())
                .or_default()
                .push(metric.clone());
        }
    }
    let view = |r: &Rule| {
        let relist = relists.get(r.path());
        RuleView {
            path: r.path().to_string(),
            origin: r.origin(),
            series_query: r.series_query().to_string(),
            metrics_query: r.metrics_query().to_string(),
            backend: snap.backends.describe(r),
            broken: r.broken().map(str::to_string),
            metrics: served.get(r.path()).cloned().unwrap_or_default(),
            last_relist: relist.and_then(|x| time(x.last_relist_seconds)),
            last_success: relist.and_then(|x| time(x.last_success_seconds)),
            last_error: relist.and_then(|x| x.last_error.clone()),
        }
    };
    let body = serde_json::json!({
        "kind": "PromhpaRules",
        "rules": snap.rules.custom.iter().map(view).collect::<Vec<_>>(),
        "externalRules": snap.rules.external.iter().map(view).collect::<Vec<_>>(),
        "resourceRules": snap.rules.resource.is_some(),
        "backends": snap.backends.list().into_iter().map(|(name, address)| serde_json::json!({"name": name, "address": address})).collect::<Vec<_>>(),
        "ready": state.registry.is_ready(),
    });
    json(&body)
}

/// What `query` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryView {
    kind: &'static str,
    path: String,
    rule: String,
    origin: String,
    series: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    objects: Vec<String>,
    promql: String,
    /// `name (address)` of the backend the query goes to.
    backend: String,
}

/// `GET /debug/promhpa/query?path=/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/x`.
pub async fn query(State(state): State<AppState>, req: Request) -> Response {
    let path = query_params(&req).remove("path");
    drop(req);
    match plan(&state, path).await {
        Ok(v) => json(&v),
        Err(e) => e.into_response(),
    }
}

/// The path's own parameters and its path part.
fn split(path: &str) -> Result<(BTreeMap<String, String>, String), ApiError> {
    let inner = Request::builder()
        .uri(path)
        .body(Body::empty())
        .map_err(|e| ApiError::BadRequest(format!("invalid path {path:?}: {e}")))?;
    Ok((query_params(&inner), inner.uri().path().to_string()))
}

async fn plan(state: &AppState, path: Option<String>) -> Result<QueryView, ApiError> {
    let Some(path) = path else {
        return Err(ApiError::BadRequest(
            "give the metrics-API path to plan as ?path=/apis/... (URL-encoded, with its own query string)".into(),
        ));
    };
    let (params, uri_path) = split(&path)?;
    if uri_path.starts_with("/apis/custom.metrics.k8s.io/") {
        let segs = segments(&uri_path, "/apis/custom.metrics.k8s.io");
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let (ns, resource, name, metric) = match segs.as_slice() {
            ["v1beta1" | "v1beta2", "namespaces", ns, "metrics", metric] => {
                (None, "namespaces", *ns, *metric)
            }
            ["v1beta1" | "v1beta2", "namespaces", ns, resource, name, metric] => {
                (Some(*ns), *resource, *name, *metric)
            }
            ["v1beta1" | "v1beta2", resource, name, metric] => (None, *resource, *name, *metric),
            _ => return Err(not_a_values_path(&path)),
        };
        let label_selector = parse_selector(&params, "labelSelector")?;
        let metric_selector = parse_selector(&params, "metricLabelSelector")?;
        let gr = match state.lookup.resolve(resource).await {
            Ok(m) => m.group_resource,
            Err(LookupError::Unavailable(e)) => return Err(ApiError::Unavailable(e)),
            Err(LookupError::UnknownResource(_)) => resource
                .parse()
                .unwrap_or_else(|_| GroupResource::new("", resource)),
        };
        let Some(entry) = state.registry.custom(&gr, metric, ns).await else {
            return Err(ApiError::not_found(format!(
                "no rule serves metric \"{metric}\" for {gr}; /debug/promhpa/rules lists what each rule discovered"
            )));
        };
        let Some(rule) = entry.rule() else {
            return Err(ApiError::Internal(format!(
                "metric \"{metric}\": registry refers to a missing rule"
            )));
        };
        let names = if name == "*" {
            state
                .lookup
                .names(&gr, ns, &label_selector)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
        } else {
            vec![name.to_string()]
        };
        if names.is_empty() {
            return Err(ApiError::not_found(format!(
                "no {gr} objects match labelSelector \"{label_selector}\"{}: the request would be a 404 before any query",
                ns.map(|n| format!(" in namespace \"{n}\"")).unwrap_or_default()
            )));
        }
        let promql = rule
            .render_custom(&entry.series, ns, &gr, &names, &metric_selector)
            .map_err(|e| ApiError::Internal(format!("{}: {e}", rule.path())))?;
        return Ok(QueryView {
            kind: "PromhpaQueryPlan",
            path,
            rule: rule.path().to_string(),
            origin: rule.origin(),
            series: entry.series.clone(),
            objects: names,
            promql,
            backend: entry.backends.describe(rule),
        });
    }
    if uri_path.starts_with("/apis/external.metrics.k8s.io/") {
        let segs = segments(&uri_path, "/apis/external.metrics.k8s.io");
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let ["v1beta1", "namespaces", ns, metric] = segs.as_slice() else {
            return Err(not_a_values_path(&path));
        };
        let a = parse_selector(&params, "labelSelector")?;
        let b = parse_selector(&params, "metricLabelSelector")?;
        let selector = promhpa_core::selector::LabelSelector::from_requirements(
            a.requirements()
                .iter()
                .chain(b.requirements())
                .cloned()
                .collect(),
        );
        let Some(entry) = state.registry.external(metric, Some(ns)).await else {
            return Err(ApiError::not_found(format!(
                "no rule serves external metric \"{metric}\"; /debug/promhpa/rules lists what each rule discovered"
            )));
        };
        let Some(rule) = entry.rule() else {
            return Err(ApiError::Internal(format!(
                "metric \"{metric}\": registry refers to a missing rule"
            )));
        };
        let promql = rule
            .render_external(&entry.series, Some(ns), &selector)
            .map_err(|e| ApiError::Internal(format!("{}: {e}", rule.path())))?;
        return Ok(QueryView {
            kind: "PromhpaQueryPlan",
            path,
            rule: rule.path().to_string(),
            origin: rule.origin(),
            series: entry.series.clone(),
            objects: Vec::new(),
            promql,
            backend: entry.backends.describe(rule),
        });
    }
    Err(not_a_values_path(&path))
}

fn not_a_values_path(path: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "{path:?} is not a metric-values path of custom.metrics.k8s.io (…/namespaces/NS/RESOURCE/NAME/METRIC) or external.metrics.k8s.io (…/namespaces/NS/METRIC)"
    ))
}
