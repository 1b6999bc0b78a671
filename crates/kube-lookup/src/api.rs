//! The Kubernetes API as the lookup needs it: GET a JSON document, open a watch, POST.
//!
//! [`crate::http::HttpKubeApi`] implements it over HTTPS; tests implement it with recorded
//! API server responses.

use promhpa_core::BoxFuture;

use crate::KubeError;

/// Accept header asking for metadata-only lists (`PartialObjectMetadataList`), falling back
/// to full objects on servers without it.
pub const ACCEPT_METADATA_LIST: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
/// Accept header asking for metadata-only watch events.
pub const ACCEPT_METADATA: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

/// One JSON document per call, until the server closes the watch.
pub trait WatchStream: Send {
    /// The next watch event (one JSON object), `None` when the server ended the watch.
    fn next_event(&mut self) -> BoxFuture<'_, Option<Result<Vec<u8>, KubeError>>>;
}

/// Requests to a Kubernetes API server. Paths are absolute (`/api/v1/pods?limit=500`).
pub trait KubeApi: Send + Sync {
    /// `GET path` with `accept`; the body of a 2xx answer, [`KubeError::Status`] otherwise.
    fn get<'a>(
        &'a self,
        path: &'a str,
        accept: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, KubeError>>;

    /// `GET path` of a watch (`watch=1` already in `path`), streaming its events.
    fn watch<'a>(
        &'a self,
        path: &'a str,
        accept: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn WatchStream>, KubeError>>;

    /// `POST path` with a JSON body; the body of a 2xx answer.
    fn post<'a>(
        &'a self,
        path: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, KubeError>>;
}
