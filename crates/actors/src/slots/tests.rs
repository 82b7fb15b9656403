//! Tests are in the crate's integration tests.
