//! promhpa-prom.
