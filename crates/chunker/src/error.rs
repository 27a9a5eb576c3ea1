//! The crate's single error type.

/// Everything that can go wrong in this crate (I/O errors are reported as
/// [`std::io::Error`] by the streaming functions instead).
///
/// Each message says what happened and what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A chunk size parameter is not a power of two.
    #[error(
        "chunker parameter `{field}` = {value} is not a power of two; \
         use a power of two such as {below} or {above}"
    )]
    NotPowerOfTwo {
        /// Name of the offending field (`min_size`, `avg_size` or `max_size`).
        field: &'static str,
        /// The rejected value.
        value: u32,
        /// Nearest power of two below the value (0 if there is none).
        below: u64,
        /// Nearest power of two above the value.
        above: u64,
    },

    /// A chunking parameter lies outside the range fastcdc accepts.
    #[error(
        "chunker parameter `{field}` = {value} is out of range; \
         choose a value in {min}..={max}"
    )]
    OutOfRange {
        /// Name of the offending field.
        field: &'static str,
        /// The rejected value.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },

    /// The chunk sizes are not strictly increasing.
    #[error(
        "chunker sizes must satisfy min_size < avg_size < max_size, but got \
         min_size = {min_size}, avg_size = {avg_size}, max_size = {max_size}; \
         adjust them (for example {min_size_hint} < {avg_size_hint} < {max_size_hint})"
    )]
    SizeOrder {
        /// The given minimum size.
        min_size: u32,
        /// The given average size.
        avg_size: u32,
        /// The given maximum size.
        max_size: u32,
        /// Suggested minimum size (the default).
        min_size_hint: u32,
        /// Suggested average size (the default).
        avg_size_hint: u32,
        /// Suggested maximum size (the default).
        max_size_hint: u32,
    },

    /// The page counts of a page-aligned chunker are not ordered.
    #[error(
        "page counts must satisfy 1 <= min_pages <= avg_pages <= max_pages, but got \
         min_pages = {min_pages}, avg_pages = {avg_pages}, max_pages = {max_pages}; \
         adjust them (for example 1 <= 4 <= 16)"
    )]
    PageOrder {
        /// The given minimum pages per chunk.
        min_pages: u32,
        /// The given average pages per chunk.
        avg_pages: u32,
        /// The given maximum pages per chunk.
        max_pages: u32,
    },

    /// A chunking spec (`fastcdc:256K,1M,4M`, `fixed:4K`, ...) cannot be parsed or holds
    /// invalid settings.
    #[error("invalid chunker spec {spec:?}: {reason}; valid specs look like {examples}")]
    InvalidSpec {
        /// The rejected spec (truncated to 100 characters).
        spec: String,
        /// What is wrong with it.
        reason: String,
        /// Valid specs, as examples.
        examples: &'static str,
    },

    /// A string is not a valid chunk id.
    #[error(
        "invalid chunk id {input:?}: a chunk id is exactly 64 hexadecimal characters \
         (0-9, a-f); copy the full id, or resolve a shorter prefix instead"
    )]
    InvalidChunkId {
        /// The rejected input (truncated to 100 characters).
        input: String,
    },

    /// An id prefix is empty.
    #[error("empty id prefix: give at least one hexadecimal character of the id")]
    EmptyPrefix,

    /// An id prefix contains non-hexadecimal characters or is too long.
    #[error("invalid id prefix {prefix:?}: use 1 to 64 hexadecimal characters (0-9, a-f)")]
    InvalidPrefix {
        /// The rejected prefix (truncated to 100 characters).
        prefix: String,
    },

    /// No id starts with the prefix.
    #[error("no id starts with {prefix:?}: check the prefix, or list the ids to find it")]
    NoMatch {
        /// The prefix that matched nothing.
        prefix: String,
    },

    /// More than one distinct id starts with the prefix.
    #[error(
        "id prefix {prefix:?} is ambiguous: it matches {count} ids; \
         give more characters to make it unique"
    )]
    Ambiguous {
        /// The ambiguous prefix.
        prefix: String,
        /// How many distinct ids it matches.
        count: usize,
    },
}

/// Truncates user input kept inside an error, so a huge string cannot make a
/// huge message.
pub(crate) fn clip(input: &str) -> String {
    const LIMIT: usize = 100;
    match input.char_indices().nth(LIMIT) {
        Some((at, _)) => format!("{}…", &input[..at]),
        None => input.to_owned(),
    }
}
