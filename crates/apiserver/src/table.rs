//! The `Table` form of an answer, which `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json`: column
//! definitions and one row of cells per object, each row carrying the object's metadata
//! (`includeObject=Metadata`, the default), the whole object (`Object`) or nothing (`None`).

use axum::extract::Request;
use axum::http::header;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// What a request asked the answer to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// The object or list itself, as JSON.
    Object,
    /// A `Table` of `meta.k8s.io/<version>`, its rows carrying what `include` says.
    Table {
        api_version: &'static str,
        include: Include,
    },
}

/// What each row of a `Table` carries (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    Metadata,
    Object,
    None,
}

/// The first media range of `Accept` this server can answer, by quality, as the generic API
/// server negotiates: plain JSON (`application/json`, `application/*`, `*/*`) or a
/// `meta.k8s.io` Table in JSON. Ranges asking for what is not served here (protobuf, YAML,
/// other conversions) are passed over; when none is left the answer is JSON.
pub(crate) fn output(
    req: &Request,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Output, ApiError> {
    let accept = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let Some(api_version) = negotiate(&accept) else {
        return Ok(Output::Object);
    };
    let include = match params.get("includeObject").map(String::as_str) {
        None | Some("") | Some("Metadata") => Include::Metadata,
        Some("Object") => Include::Object,
        Some("None") => Include::None,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Unable to convert to Table as requested: includeObject: Unsupported value: \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
            )))
        }
    };
    Ok(Output::Table {
        api_version,
        include,
    })
}

/// The Table version the best acceptable media range asks for, `None` for plain JSON.
fn negotiate(accept: &str) -> Option<&'static str> {
    let mut ranges: Vec<(f32, usize, &str)> = Vec::new();
    for (i, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if media.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in parts.clone() {
            if let Some(v) = p.strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            }
        }
        if q > 0.0 {
            ranges.push((q, i, range));
        }
    }
    // Highest quality first; the order of the header between equals.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, range) in ranges {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let (mut r#as, mut g, mut v) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", x)) => r#as = x,
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                _ => {}
            }
        }
        match (r#as, g, v) {
            ("", _, _) => return None,
            ("Table", "meta.k8s.io", "v1") => return Some("meta.k8s.io/v1"),
            ("Table", "meta.k8s.io", "v1beta1") => return Some("meta.k8s.io/v1beta1"),
            _ => continue,
        }
    }
    None
}

#[derive(Serialize)]
pub(crate) struct Column {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

#[derive(Serialize)]
struct Row {
    cells: Vec<Value>,
    object: Value,
}

#[derive(Serialize)]
pub(crate) struct Table {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: crate::types::ListMeta,
    #[serde(rename = "columnDefinitions")]
    column_definitions: Option<Vec<Column>>,
    rows: Option<Vec<Row>>,
}

/// One object of a table: its cells, and the object itself with its `metadata`.
pub(crate) struct Item {
    pub cells: Vec<Value>,
    pub object: Value,
}

/// The `Table` answer: `columns` (`None` when there are no rows, as Kubernetes leaves them
/// out then) and one row per item, carrying what `include` says.
pub(crate) fn table(
    api_version: &'static str,
    include: Include,
    columns: Option<Vec<Column>>,
    items: Vec<Item>,
) -> Table {
    let rows = (!items.is_empty()).then(|| {
        items
            .into_iter()
            .map(|item| Row {
                cells: item.cells,
                object: match include {
                    Include::Object => item.object,
                    Include::None => Value::Null,
                    Include::Metadata => serde_json::json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": api_version,
                        "metadata": item.object.get("metadata").cloned().unwrap_or(Value::Null),
                    }),
                },
            })
            .collect()
    });
    Table {
        kind: "Table",
        api_version,
        metadata: crate::types::ListMeta {},
        column_definitions: columns,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_asks_for_a_table_and_others_for_json() {
        // kubectl get
        assert_eq!(
            negotiate("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
            Some("meta.k8s.io/v1")
        );
        assert_eq!(
            negotiate("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"),
            Some("meta.k8s.io/v1beta1")
        );
        // kubectl get --raw, the HPA controller, client-go's protobuf preference.
        assert_eq!(negotiate("application/json, */*"), None);
        assert_eq!(negotiate("application/vnd.kubernetes.protobuf, */*"), None);
        assert_eq!(negotiate(""), None);
        // A conversion not served here is passed over; quality comes before order.
        assert_eq!(
            negotiate("application/json;as=Table;v=v2;g=meta.k8s.io, application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1;g=meta.k8s.io"),
            Some("meta.k8s.io/v1")
        );
        assert_eq!(
            negotiate("application/json;q=0.5, application/json;as=Table;v=v1;g=meta.k8s.io"),
            Some("meta.k8s.io/v1")
        );
        assert_eq!(
            negotiate("application/json;as=Table;v=v1;g=meta.k8s.io;q=0, application/json"),
            None
        );
    }

    #[test]
    fn include_object_is_read_for_tables_only() {
        let req = |accept: &str| {
            Request::builder()
                .header(header::ACCEPT, accept)
                .body(axum::body::Body::empty())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let params = |v: &str| [("includeObject".to_string(), v.to_string())].into();
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
        let got = |accept, v| output(&req(accept), &params(v));
        assert_eq!(
            got(table, "Object").ok(),
            Some(Output::Table {
                api_version: "meta.k8s.io/v1",
                include: Include::Object
            })
        );
        assert_eq!(
            got(table, "").ok(),
            Some(Output::Table {
                api_version: "meta.k8s.io/v1",
                include: Include::Metadata
            })
        );
        let Err(e) = got(table, "Everything") else {
            panic!("accepted")
        };
        assert!(
            e.to_string().contains("Unsupported value: \"Everything\""),
            "{e}"
        );
        // As the generic API server, the parameter is not looked at without a Table.
        assert_eq!(
            got("application/json", "Everything").ok(),
            Some(Output::Object)
        );
    }
}
