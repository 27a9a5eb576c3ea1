//! End-to-end tests of the `respaldo` binary: each test runs the real executable in its own
//! temporary folders (repository, cache, sources, restore targets) and checks exit codes,
//! output and the restored files.
//!
//! All tests build into one binary (`autotests = false` in `crates/respaldo-cli/Cargo.toml`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod analyze;
mod basics;
mod browse;
mod copy;
mod damage;
mod errors;
mod events;
mod forget;
mod format;
mod jobs;
mod key;
mod lifecycle;
mod repair;
mod roundtrip;
mod s3;
mod service_reload;
mod sqlite;
mod tree;
mod util;
