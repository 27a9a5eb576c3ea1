//! One module per command, each reached through a method on [`crate::Repository`].

pub(crate) mod analyze;
pub(crate) mod backup;
pub(crate) mod check;
pub(crate) mod copy;
pub(crate) mod diff;
pub(crate) mod dump;
pub(crate) mod forget;
pub(crate) mod key;
pub(crate) mod listed_blobs;
pub(crate) mod ls;
pub(crate) mod prune;
pub(crate) mod repair;
pub(crate) mod restore;
pub(crate) mod stats;
