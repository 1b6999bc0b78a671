//! promhpa-test-support.
