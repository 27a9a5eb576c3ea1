//! Recognising a SQLite database by its header, to chunk it at its own page size.

/// How many bytes of a file's start [`sqlite_page_size`] reads (the magic string and the page
/// size field): pass at least this many to tell a SQLite database apart.
pub const SQLITE_HEADER_LEN: usize = 18;

/// The magic string that starts every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The page size of the SQLite database whose first bytes are `header`, or `None` if `header`
/// is not the start of a SQLite 3 database (too short, another magic string, or an invalid
/// page size).
///
/// The header is `"SQLite format 3\0"` in bytes 0..16, then the page size as a big-endian
/// `u16` at offset 16, where the value 1 means 65536. Only powers of two in `512..=65536`
/// are valid page sizes.
#[allow(
    clippy::big_endian_bytes,
    reason = "the SQLite file format stores it big-endian"
)]
#[must_use]
pub fn sqlite_page_size(header: &[u8]) -> Option<u32> {
    if header.get(..16)? != SQLITE_MAGIC {
        return None;
    }
    let raw = u16::from_be_bytes([*header.get(16)?, *header.get(17)?]);
    let size = if raw == 1 { 65536 } else { u32::from(raw) };
    (size.is_power_of_two() && (512..=65536).contains(&size)).then_some(size)
}

/// Reads the first [`SQLITE_HEADER_LEN`] bytes of `reader` into `header`, or as many as it
/// has; returns how many. Put them back in front of the rest (`header[..n].chain(reader)`) to
/// read the whole input.
pub fn read_header(
    reader: &mut impl std::io::Read,
    header: &mut [u8; SQLITE_HEADER_LEN],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: [u8; 2]) -> Vec<u8> {
        let mut h = SQLITE_MAGIC.to_vec();
        h.extend_from_slice(&size);
        h.extend_from_slice(&[0; 82]);
        h
    }

    #[test]
    fn recognises_valid_page_sizes() {
        assert_eq!(sqlite_page_size(&header([0x10, 0x00])), Some(4096));
        assert_eq!(sqlite_page_size(&header([0x02, 0x00])), Some(512));
        assert_eq!(sqlite_page_size(&header([0x80, 0x00])), Some(32768));
        assert_eq!(sqlite_page_size(&header([0x00, 0x01])), Some(65536));
        assert_eq!(
            sqlite_page_size(&header([0x10, 0x00])[..SQLITE_HEADER_LEN]),
            Some(4096)
        );
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(sqlite_page_size(&header([0x01, 0x00])), None, "256");
        assert_eq!(sqlite_page_size(&header([0x0f, 0xff])), None, "4095");
        assert_eq!(sqlite_page_size(&header([0x00, 0x00])), None, "0");
        assert_eq!(sqlite_page_size(&header([0x10, 0x00])[..17]), None);
        assert_eq!(sqlite_page_size(b""), None);
        let mut other = header([0x10, 0x00]);
        other[0] = b's';
        assert_eq!(sqlite_page_size(&other), None);
    }
}
