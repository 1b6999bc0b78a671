//! `GET /api/v1/nodes` for `serve --demo`, served by [`promhpa_apiserver::demo_nodes`].

pub use promhpa_apiserver::demo_nodes::{nodes_of, router};
