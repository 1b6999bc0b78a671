//! Delegated authentication and authorization for an aggregated API server.
