//! promhpa-kube-lookup.
