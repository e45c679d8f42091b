//! Layer and archive compression, told apart by magic numbers (never by file name).

use std::io::{self, BufRead, Cursor, Read};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI layer media type for a tar with this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

pub type Prefixed<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// Reads the first bytes of `reader` to detect the compression, and gives them back in front.
pub fn sniff<R: Read>(mut reader: R, what: &str) -> Result<(Compression, Prefixed<R>), Error> {
    let mut head = Vec::with_capacity(6);
    (&mut reader)
        .take(6)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(what, e))?;
    let kind = match head.as_slice() {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0xfd, b'7', b'z', b'X', b'Z', 0] => {
            return Err(Error::invalid(format!(
                "{what}: xz compression is not supported (use gzip, zstd or none)"
            )))
        }
        [b'B', b'Z', b'h', ..] => {
            return Err(Error::invalid(format!(
                "{what}: bzip2 compression is not supported (use gzip, zstd or none)"
            )))
        }
        [] => return Err(Error::invalid(format!("{what}: empty archive"))),
        _ => Compression::None,
    };
    Ok((kind, Cursor::new(head).chain(reader)))
}

/// A reader of the uncompressed stream, decoding `reader`'s own buffer in place. Gzip may have
/// several members (pigz, concatenations).
pub fn decoder<'a, R: BufRead + 'a>(
    kind: Compression,
    reader: R,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}
