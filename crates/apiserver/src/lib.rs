//! promhpa-apiserver.
