//! Holder crate for the workspace-level integration tests in `tests.rs`; it exports nothing.
