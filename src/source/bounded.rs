//! Reading a source file within the limits of what a source may say
//! ([`crate::limits`]): its size, checked while reading (a 10 GB file is never
//! read whole), and the length of each line, checked before a parser sees it.
//!
//! Knows bytes and lines only; what a line means is the parsers' business.

use std::io::{self, Read};
use std::path::Path;

use crate::job::{Diagnostic, Origin};
use crate::limits::{FILE_BYTES_MAX, LINE_BYTES_MAX};

/// Reads the file at `path`, refusing one larger than [`FILE_BYTES_MAX`].
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    read_from(std::fs::File::open(path)?)
}

/// Reads `source` to its end, refusing more than [`FILE_BYTES_MAX`] bytes:
/// at most one byte more than the limit is ever read.
pub fn read_from(source: impl Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    source
        .take(FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)?;
    check_size(bytes.len()).map_err(|m| io::Error::new(io::ErrorKind::FileTooLarge, m))?;
    Ok(bytes)
}

/// The file-size rule as a message, for text that arrives already read.
pub fn check_size(len: usize) -> Result<(), String> {
    if len <= FILE_BYTES_MAX {
        Ok(())
    } else {
        Err(format!(
            "the file is larger than {FILE_BYTES_MAX} bytes (8 MiB), the most a source may be; \
             split it into several files"
        ))
    }
}

/// The first line longer than [`LINE_BYTES_MAX`], as an error at its line.
pub fn check_lines(path: &Path, bytes: &[u8]) -> Result<(), Diagnostic> {
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.len() > LINE_BYTES_MAX {
            return Err(Diagnostic::error(
                Some(Origin::new(path, index + 1)),
                format!(
                    "line: {} bytes is too long; at most {LINE_BYTES_MAX} (128 KiB)",
                    line.len()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endless file that counts what was read of it.
    struct Endless(usize);

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(b'#');
            self.0 += buf.len();
            Ok(buf.len())
        }
    }

    #[test]
    fn a_source_larger_than_the_limit_is_refused_after_reading_one_byte_more() {
        let mut endless = Endless(0);
        let e = read_from(&mut endless).expect_err("too large");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("larger than 8388608 bytes"), "{e}");
        assert_eq!(endless.0, FILE_BYTES_MAX + 1, "never read whole");
        assert!(read_from(io::Cursor::new(vec![b'#'; FILE_BYTES_MAX])).is_ok());
    }

    #[test]
    fn a_line_over_the_limit_is_refused_with_its_number() {
        let mut text = b"a\nb\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', LINE_BYTES_MAX + 1));
        text.extend(b"\nc\n");
        let e = check_lines(Path::new("/f"), &text).expect_err("too long");
        assert_eq!(
            e.to_string(),
            "/f:3: error: line: 131073 bytes is too long; at most 131072 (128 KiB)"
        );
        assert!(check_lines(Path::new("/f"), &text[..4]).is_ok());
    }
}
