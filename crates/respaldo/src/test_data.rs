//! Data for the unit tests.

/// `len` pseudo-random bytes from `seed` (xorshift): incompressible, and the same on every run.
pub(crate) fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}
