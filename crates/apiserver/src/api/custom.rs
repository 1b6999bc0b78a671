//! custom.metrics.k8s.io (v1beta1, v1beta2): the value of a metric for one object, for
//! every object matching a label selector (`*`), or for a namespace itself. The object
//! type is resolved and the rule found, the objects listed, the rule's query rendered and
//! sent, and each sample matched to its object by the rule's label for the object type;
//! each step is timed as a stage of the request.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use promhpa_core::backend::Sample;
use promhpa_core::lookup::{GroupResource, LookupError};
use promhpa_core::path::segments;
use promhpa_core::quantity::Quantity;

use super::discovery::{custom_group, custom_resources, resources};
use super::errors::{render_error, unknown_metric};
use super::values::{forwarding, query_vector, range_window_seconds, unservable};
use crate::answer::{remembered, request_key};
use crate::apiserver_metrics::Counted;
use crate::error::ApiError;
use crate::metrics::{Stage, StageClock};
use crate::registry::Api;
use crate::request::{
    counted_as, json, not_found, parse_selector, query_params, refuse_watch, with_route,
};
use crate::state::AppState;
use crate::types::*;

/// Every `/apis/custom.metrics.k8s.io` path: the group, a version's metrics, or a value.
pub(super) async fn handler(State(state): State<AppState>, req: Request) -> Response {
    let mut clock = StageClock::start(&state.metrics);
    let segs = segments(req.uri().path(), "/apis/custom.metrics.k8s.io");
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let counted = Counted::custom(&segs);
    counted_as(counted, serve(&state, &mut clock, req, &segs).await)
}

/// The answer to a custom.metrics.k8s.io path split into `segs`.
async fn serve(
    state: &AppState,
    clock: &mut StageClock<'_>,
    req: Request,
    segs: &[&str],
) -> Response {
    let params = query_params(&req);
    let version = segs.first().copied();
    if let Some(v) = version {
        if v != "v1beta1" && v != "v1beta2" {
            return ApiError::not_found(format!(
                "the server could not find the requested resource: version \"{v}\" of {CUSTOM_GROUP} is not served (v1beta1, v1beta2 are)"
            ))
            .into_response();
        }
    }
    // The resource of a value path, for a refused watch.
    let valued = match segs {
        [_, "namespaces", _, "metrics", _] => Some("namespaces"),
        [_, "namespaces", _, resource, _, _] | [_, resource, _, _] => Some(*resource),
        _ => None,
    };
    if let Some(resource) = valued {
        let resource = resource.strip_suffix('.').unwrap_or(resource);
        if let Err(e) = refuse_watch(&params, &format!("{resource}.{CUSTOM_GROUP}")) {
            return e.into_response();
        }
    }
    let key = request_key(state, &req, &params);
    let (route, result) = match segs {
        [] => return json(&custom_group()),
        [v] => {
            let path = format!("/apis/{CUSTOM_GROUP}/{v}");
            let own = custom_resources(state, v);
            return resources(state, Api::Custom, &path, req.headers(), own).await;
        }
        [v, "namespaces", ns, "metrics", metric] => (
            "custom/namespace",
            custom_values(state, clock, v, None, "namespaces", ns, metric, &params).await,
        ),
        [v, "namespaces", ns, resource, name, metric] => (
            "custom/namespaced",
            custom_values(state, clock, v, Some(ns), resource, name, metric, &params).await,
        ),
        [v, resource, name, metric] => (
            "custom/cluster",
            custom_values(state, clock, v, None, resource, name, metric, &params).await,
        ),
        _ => return not_found(req).await,
    };
    if let Some((f, metric)) = forwarding(state, Api::Custom, req.headers(), &result) {
        let forwarded = f.forward(Api::Custom, &metric, req.uri()).await;
        return with_route("custom/forwarded", forwarded);
    }
    with_route(route, remembered(state, "custom", key, result).await)
}

/// The value of `metric` for the object `name` (every object matching `labelSelector`
/// when it is `*`) of `resource`. The route, object lookup, render and encode stages are
/// timed on `clock`; the backend and decode ones by the query.
#[allow(clippy::too_many_arguments)]
async fn custom_values(
    state: &AppState,
    clock: &mut StageClock<'_>,
    version: &str,
    namespace: Option<&str>,
    resource: &str,
    name: &str,
    metric: &str,
    params: &BTreeMap<String, String>,
) -> Result<Response, ApiError> {
    let label_selector = parse_selector(params, "labelSelector")?;
    let metric_selector = parse_selector(params, "metricLabelSelector")?;
    // `pods.` is `pods` of the core group, as `schema.ParseGroupResource` reads it.
    let resource = resource.strip_suffix('.').unwrap_or(resource);
    let (gr, kind, api_version, namespaced) = match state.lookup.resolve(resource).await {
        Ok(m) => {
            let av = if m.group_resource.group.is_empty() {
                m.version.clone()
            } else {
                format!("{}/{}", m.group_resource.group, m.version)
            };
            (m.group_resource, m.kind, av, Some(m.namespaced))
        }
        Err(LookupError::Unavailable(e)) => return Err(ApiError::Unavailable(e)),
        Err(LookupError::UnknownResource(_)) => {
            let gr: GroupResource = resource
                .parse()
                .unwrap_or_else(|_| GroupResource::new("", resource));
            (gr, String::new(), String::new(), None)
        }
    };
    // A cluster-scoped resource (nodes) asked for in a namespace: say where it is served.
    if let (Some(ns), Some(false)) = (namespace, namespaced) {
        return Err(ApiError::NotFound {
            message: format!(
                "{gr} are cluster-scoped, so there is no metric \"{metric}\" for them in namespace \"{ns}\": ask without a namespace (/apis/{CUSTOM_GROUP}/{version}/{gr}/{name}/{metric})"
            ),
            details: Some(StatusDetails {
                name: metric.to_string(),
                group: CUSTOM_GROUP.to_string(),
                kind: gr.to_string(),
            }),
        });
    }
    let entry = match state.registry.custom(&gr, metric, namespace).await {
        Some(e) => e,
        None => return Err(unknown_metric(state, metric, &gr)),
    };
    let Some(rule) = entry.rule() else {
        return Err(ApiError::Internal(format!(
            "metric \"{metric}\": registry refers to a missing rule"
        )));
    };
    // A namespaced resource asked for across namespaces, of a rule whose series say their
    // namespace: prometheus-adapter serves such a metric in a namespace only (its answer
    // here would mix objects of one name from several namespaces).
    if namespace.is_none()
        && namespaced == Some(true)
        && rule
            .label_for_resource(&promhpa_rules::namespaces_resource())
            .is_some()
    {
        return Err(ApiError::NotFound {
            message: format!(
                "the server could not find the metric {metric} for {gr}: {gr} are namespaced and {} maps a namespace label, so ask for it in a namespace (/apis/{CUSTOM_GROUP}/{version}/namespaces/NAMESPACE/{gr}/{name}/{metric})",
                rule.path()
            ),
            details: Some(StatusDetails {
                name: metric.to_string(),
                group: CUSTOM_GROUP.to_string(),
                kind: gr.to_string(),
            }),
        });
    }
    clock.lap(Stage::Route);
    let names: Vec<String> = if name == "*" {
        let found = state
            .lookup
            .names(&gr, namespace, &label_selector)
            .await
            .map_err(|e| match e {
                LookupError::Unavailable(m) => ApiError::Unavailable(m),
                LookupError::UnknownResource(r) => {
                    ApiError::not_found(format!("the server doesn't have a resource type \"{r}\""))
                }
            })?;
        if found.is_empty() {
            let scope = namespace
                .map(|n| format!(" in namespace \"{n}\""))
                .unwrap_or_default();
            return Err(ApiError::not_found(format!(
                "no {gr} objects{scope} match labelSelector \"{label_selector}\", so there is no value of metric \"{metric}\" to return"
            )));
        }
        clock.lap(Stage::ObjectLookup);
        found
    } else {
        vec![name.to_string()]
    };
    let promql = rule
        .render_custom(&entry.series, namespace, &gr, &names, &metric_selector)
        .map_err(|e| render_error(e, metric))?;
    let Some(label) = rule.label_for_resource(&gr) else {
        return Err(ApiError::Internal(format!(
            "metric \"{metric}\" ({}): no label holds {gr} names",
            rule.path()
        )));
    };
    clock.lap(Stage::Render);
    let samples = query_vector(state, &entry.backends, rule, metric, &promql).await?;
    clock.restart();
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let mut by_name: BTreeMap<&str, &Sample> = BTreeMap::new();
    let mut seen_other: BTreeSet<String> = BTreeSet::new();
    for s in &samples {
        match s.labels.get(&label).map(String::as_str) {
            Some(n) if wanted.contains(n) => {
                // The last series of an object wins, as prometheus-adapter fills its map in
                // the order of the answer.
                by_name.insert(n, s);
            }
            Some(n) => {
                seen_other.insert(n.to_string());
            }
            None => {
                seen_other.insert(format!("<no {label} label>"));
            }
        }
    }
    let window = range_window_seconds(&promql);
    let described = |n| ObjectReference {
        kind: &kind,
        namespace: namespace.unwrap_or(""),
        name: n,
        api_version: &api_version,
    };
    let mut values: Vec<(&str, Quantity, i64)> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    for (n, s) in &by_name {
        match Quantity::from_f64_milli(s.value) {
            Some(q) => values.push((n, q, s.timestamp_ms)),
            None => {
                state.metrics.dropped_value(metric);
                tracing::warn!(metric, object = n, value = unservable(s.value), query = %promql, "value dropped: not a number a quantity holds");
                dropped.push(format!("{n}: {}", unservable(s.value)));
            }
        }
    }
    if values.is_empty() {
        let scope = namespace
            .map(|n| format!(" in namespace \"{n}\""))
            .unwrap_or_default();
        let message = if !dropped.is_empty() {
            format!(
                "metric \"{metric}\" for {gr}{scope} has no value a quantity can hold (dropped {}); query: {promql}",
                dropped.join(", ")
            )
        } else if samples.is_empty() {
            format!(
                "the query for metric \"{metric}\" returned no series for these {gr}{scope}; query: {promql} (results are matched to objects by the label \"{label}\")"
            )
        } else {
            format!(
                "the query for metric \"{metric}\" returned {} series but none has label \"{label}\" naming a requested {gr}{scope} (found: {}); query: {promql}",
                samples.len(),
                seen_other.into_iter().take(10).collect::<Vec<_>>().join(", ")
            )
        };
        return Err(ApiError::NotFound {
            message,
            details: Some(StatusDetails {
                name: metric.to_string(),
                group: CUSTOM_GROUP.to_string(),
                kind: gr.to_string(),
            }),
        });
    }
    let selector = MetaLabelSelector::from_selector(&metric_selector);
    // The samples of an instant query share one timestamp: each distinct one is written once.
    let mut stamps: BTreeMap<i64, String> = BTreeMap::new();
    for &(_, _, ts) in &values {
        stamps.entry(ts).or_insert_with(|| rfc3339(ts));
    }
    let stamp = |ts: i64| match stamps.get(&ts) {
        Some(s) => Cow::Borrowed(s.as_str()),
        None => Cow::Owned(rfc3339(ts)),
    };
    let api = format!("{CUSTOM_GROUP}/{version}");
    let answer = if version == "v1beta1" {
        let items = values
            .into_iter()
            .map(|(n, q, ts)| MetricValueV1Beta1 {
                described_object: described(n),
                metric_name: metric,
                timestamp: stamp(ts),
                window,
                value: q,
                selector: selector.as_ref(),
            })
            .collect();
        Ok(json(&MetricValueList::new("MetricValueList", api, items)))
    } else {
        let items = values
            .into_iter()
            .map(|(n, q, ts)| MetricValueV1Beta2 {
                described_object: described(n),
                metric: MetricIdentifier {
                    name: metric,
                    selector: selector.as_ref(),
                },
                timestamp: stamp(ts),
                window_seconds: window,
                value: q,
            })
            .collect();
        Ok(json(&MetricValueList::new("MetricValueList", api, items)))
    };
    clock.lap(Stage::Encode);
    answer
}
