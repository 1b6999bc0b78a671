//! What the custom and external metric values share: the query's answer as samples, the
//! window a query's values cover, how a value that is not finite is named, and the
//! forwarder of a metric no rule serves.

use axum::response::Response;
use promhpa_core::backend::{QueryValue, Sample};
use promhpa_rules::Rule;

use super::errors::backend_error;
use crate::answer::observed_query;
use crate::backends::Backends;
use crate::error::ApiError;
use crate::forward::Forwarder;
use crate::registry::Api;
use crate::state::AppState;

/// The samples `promql` answers with for `metric`, from the backend `rule` uses; a scalar
/// answer is one sample without labels.
pub(super) async fn query_vector(
    state: &AppState,
    backends: &Backends,
    rule: &Rule,
    metric: &str,
    promql: &str,
) -> Result<Vec<Sample>, ApiError> {
    let backend = backends
        .for_rule(rule)
        .map_err(|e| backend_error(e, metric, rule, promql))?;
    match observed_query(state, backend, rule.path(), promql).await {
        Ok(QueryValue::Vector(v)) => Ok(v),
        Ok(QueryValue::Scalar {
            value,
            timestamp_ms,
        }) => Ok(vec![Sample {
            labels: Default::default(),
            value,
            timestamp_ms,
        }]),
        Ok(other) => Err(ApiError::Internal(format!(
            "metric \"{metric}\" ({}): the query returned a {} instead of a vector; query: {promql}",
            rule.path(),
            other.type_name()
        ))),
        Err(e) => Err(backend_error(e, metric, rule, promql)),
    }
}

/// The largest range (`[5m]`, `[1h:1m]`) in a query, in seconds: the window its values cover.
pub fn range_window_seconds(promql: &str) -> Option<i64> {
    let mut best = None;
    let mut rest = promql;
    while let Some(start) = rest.find('[') {
        let after = &rest[start + 1..];
        let Some(end) = after.find(']') else { break };
        let inner = after[..end].split(':').next().unwrap_or("").trim();
        if let Ok(ms) = promhpa_core::duration::parse_prometheus_duration_ms(inner) {
            let s = ms / 1000;
            if best.is_none_or(|b| s > b) {
                best = Some(s);
            }
        }
        rest = &after[end..];
    }
    best
}

/// Why a value cannot be served: NaN, an infinity, or a finite value whose milli-units do
/// not fit an int64 (the HPA controller reads values through `MilliValue`).
pub(super) fn unservable(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!(
            "{v:e}, beyond ±{:e}, past an int64 of milli-units",
            promhpa_core::quantity::Quantity::MAX_F64
        )
    }
}

/// The forwarder, and the metric, when `result` says no rule serves the metric and `api`
/// forwards such requests.
pub(super) fn forwarding<'a>(
    state: &'a AppState,
    api: Api,
    headers: &axum::http::HeaderMap,
    result: &Result<Response, ApiError>,
) -> Option<(&'a Forwarder, String)> {
    let Err(ApiError::UnknownMetric { details, .. }) = result else {
        return None;
    };
    let f = state.forward.as_deref()?;
    f.forwards(api, headers).then(|| (f, details.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_from_ranges() {
        assert_eq!(
            range_window_seconds("sum(rate(x{a=\"b\"}[2m])) by (pod)"),
            Some(120)
        );
        assert_eq!(
            range_window_seconds("max_over_time(rate(x[1m])[5m:30s])"),
            Some(300)
        );
        assert_eq!(range_window_seconds("sum(x)"), None);
    }
}
