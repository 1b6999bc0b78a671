//! promhpa-hpa.
