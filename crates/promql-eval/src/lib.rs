//! promhpa-promql-eval.
