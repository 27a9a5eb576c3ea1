//! Chunking parameters and their validation.

use fastcdc::v2020::{
    AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN, Normalization,
};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Name of the chunking algorithm, to record next to [`ChunkerParams`] in a
/// repository's configuration.
pub const ALGORITHM: &str = "fastcdc-v2020";

/// Exact version of the `fastcdc` crate whose cut points this crate
/// reproduces. Cut points changed between fastcdc releases, so a repository
/// should record this and refuse to mix chunkings made by different versions.
pub const FASTCDC_VERSION: &str = "5.0.0";

/// Validated chunking parameters.
///
/// All three sizes are powers of two, `min_size < avg_size < max_size`, each
/// within the bounds fastcdc accepts, and `normalization` is `0..=3`.
/// [`ChunkerParams::new`] and [`Default`] only produce valid values; values
/// built with a struct literal or deserialized are checked again by
/// [`Chunker::new`](crate::Chunker::new) (or explicitly with
/// [`ChunkerParams::validate`]).
///
/// The same parameters (and fastcdc version) always give the same cut points;
/// changing any field, including `seed`, changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Minimum chunk size in bytes (only the last chunk of a stream may be
    /// smaller).
    pub min_size: u32,
    /// Target average chunk size in bytes.
    pub avg_size: u32,
    /// Maximum chunk size in bytes (no chunk is larger).
    pub max_size: u32,
    /// FastCDC normalization level, `0..=3`: higher levels keep chunk sizes
    /// closer to `avg_size`.
    pub normalization: u8,
    /// Seed XOR-ed into the gear tables. A secret seed (for example derived
    /// from the repository key) hides cut points, and thus file sizes, from
    /// someone who only sees chunk sizes. `0` keeps fastcdc's original tables.
    pub seed: u64,
}

impl ChunkerParams {
    /// Default minimum chunk size: 128 KiB.
    pub const DEFAULT_MIN: u32 = 128 * 1024;
    /// Default average chunk size: 512 KiB. Chosen from the four benchmark scenarios
    /// (`docs/benchmarks.md`, "Chunk sizes and zstd level"): an edit in a large file costs half
    /// of what 1 MiB chunks cost, for 0.8% more on a first backup of compressed binaries.
    pub const DEFAULT_AVG: u32 = 512 * 1024;
    /// Default maximum chunk size: 2 MiB.
    pub const DEFAULT_MAX: u32 = 2 * 1024 * 1024;
    /// Default normalization level: 1.
    pub const DEFAULT_NORMALIZATION: u8 = 1;

    /// Builds and validates parameters.
    ///
    /// # Errors
    /// The errors of [`ChunkerParams::validate`].
    pub fn new(
        min_size: u32,
        avg_size: u32,
        max_size: u32,
        normalization: u8,
        seed: u64,
    ) -> Result<Self, Error> {
        let params = Self {
            min_size,
            avg_size,
            max_size,
            normalization,
            seed,
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks the parameters. fastcdc itself checks them only in debug builds
    /// (and not the power-of-two rule at all), so this is what stands between
    /// a bad configuration and silently different cut points.
    ///
    /// # Errors
    /// - [`Error::NotPowerOfTwo`] if a size is not a power of two;
    /// - [`Error::OutOfRange`] if a size is outside fastcdc's bounds
    ///   (`min_size` 64..=1 MiB, `avg_size` 256..=4 MiB, `max_size`
    ///   1 KiB..=16 MiB) or `normalization` is above 3;
    /// - [`Error::SizeOrder`] unless `min_size < avg_size < max_size`.
    ///
    /// Every error names the offending field, its value and what is allowed.
    pub fn validate(&self) -> Result<(), Error> {
        check_size("min_size", self.min_size, MINIMUM_MIN, MINIMUM_MAX)?;
        check_size("avg_size", self.avg_size, AVERAGE_MIN, AVERAGE_MAX)?;
        check_size("max_size", self.max_size, MAXIMUM_MIN, MAXIMUM_MAX)?;
        if !(self.min_size < self.avg_size && self.avg_size < self.max_size) {
            return Err(Error::SizeOrder {
                min_size: self.min_size,
                avg_size: self.avg_size,
                max_size: self.max_size,
                min_size_hint: Self::DEFAULT_MIN,
                avg_size_hint: Self::DEFAULT_AVG,
                max_size_hint: Self::DEFAULT_MAX,
            });
        }
        if self.normalization > 3 {
            return Err(Error::OutOfRange {
                field: "normalization",
                value: u64::from(self.normalization),
                min: 0,
                max: 3,
            });
        }
        Ok(())
    }

    /// Returns the same parameters with another gear-table seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// The fastcdc normalization level. Only meaningful on validated params.
    pub(crate) fn level(&self) -> Normalization {
        match self.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        }
    }
}

impl Default for ChunkerParams {
    /// 128 KiB / 512 KiB / 2 MiB, normalization 1, seed 0.
    fn default() -> Self {
        Self {
            min_size: Self::DEFAULT_MIN,
            avg_size: Self::DEFAULT_AVG,
            max_size: Self::DEFAULT_MAX,
            normalization: Self::DEFAULT_NORMALIZATION,
            seed: 0,
        }
    }
}

fn check_size(field: &'static str, value: u32, min: usize, max: usize) -> Result<(), Error> {
    // Out of range first: for 0 there is no power of two below to suggest.
    let v = value as usize;
    if v < min || v > max {
        return Err(Error::OutOfRange {
            field,
            value: u64::from(value),
            min: min as u64,
            max: max as u64,
        });
    }
    if !value.is_power_of_two() {
        let above = u64::from(value).next_power_of_two().max(1);
        let below = if value == 0 { 0 } else { above / 2 };
        return Err(Error::NotPowerOfTwo {
            field,
            value,
            below,
            above,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Regression: 0 was refused as "not a power of two; use one such as 0 or 1".
    #[test]
    fn zero_is_out_of_range_with_the_allowed_range() {
        let params = ChunkerParams {
            min_size: 0,
            ..ChunkerParams::default()
        };
        assert!(matches!(
            params.validate(),
            Err(Error::OutOfRange {
                field: "min_size",
                value: 0,
                ..
            })
        ));
    }

    fn msg(r: Result<ChunkerParams, Error>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn default_is_valid() {
        let p = ChunkerParams::default();
        p.validate().unwrap();
        assert_eq!(p.seed, 0);
        assert_eq!(p.with_seed(7).seed, 7);
        assert_eq!(p.with_seed(7).avg_size, ChunkerParams::DEFAULT_AVG);
    }

    #[test]
    fn smallest_and_largest_are_valid() {
        ChunkerParams::new(64, 256, 1024, 0, 0).unwrap();
        ChunkerParams::new(1 << 20, 4 << 20, 16 << 20, 3, u64::MAX).unwrap();
    }

    #[test]
    fn not_power_of_two_names_field() {
        let m = msg(ChunkerParams::new(5000, 16384, 65536, 1, 0));
        assert!(m.contains("min_size") && m.contains("5000"), "{m}");
        assert!(m.contains("power of two") && m.contains("4096") && m.contains("8192"));
        let m = msg(ChunkerParams::new(4096, 16000, 65536, 1, 0));
        assert!(m.contains("avg_size") && m.contains("16000"), "{m}");
        let m = msg(ChunkerParams::new(4096, 16384, 65534, 1, 0));
        assert!(m.contains("max_size") && m.contains("65534"), "{m}");
        let m = msg(ChunkerParams::new(0, 16384, 65536, 1, 0));
        assert!(m.contains("min_size"), "{m}");
    }

    #[test]
    fn order_is_checked() {
        let m = msg(ChunkerParams::new(16384, 16384, 65536, 1, 0));
        assert!(m.contains("min_size < avg_size"), "{m}");
        assert!(m.contains("min_size = 16384"), "{m}");
        let m = msg(ChunkerParams::new(4096, 65536, 65536, 1, 0));
        assert!(m.contains("max_size = 65536"), "{m}");
        assert!(matches!(
            ChunkerParams::new(8192, 4096, 65536, 1, 0),
            Err(Error::SizeOrder { .. })
        ));
    }

    #[test]
    fn bounds_are_checked() {
        let m = msg(ChunkerParams::new(32, 256, 1024, 1, 0));
        assert!(m.contains("min_size") && m.contains("64..=1048576"), "{m}");
        let m = msg(ChunkerParams::new(64, 128, 1024, 1, 0));
        assert!(m.contains("avg_size") && m.contains("256..=4194304"), "{m}");
        let m = msg(ChunkerParams::new(1 << 20, 4 << 20, 32 << 20, 1, 0));
        assert!(
            m.contains("max_size") && m.contains("1024..=16777216"),
            "{m}"
        );
        let m = msg(ChunkerParams::new(2 << 20, 4 << 20, 16 << 20, 1, 0));
        assert!(m.contains("min_size") && m.contains("2097152"), "{m}");
    }

    #[test]
    fn normalization_is_checked() {
        let m = msg(ChunkerParams::new(4096, 16384, 65536, 4, 0));
        assert!(m.contains("normalization") && m.contains("0..=3"), "{m}");
    }
}
