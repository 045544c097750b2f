//! The IDX format of (Fashion-)MNIST: a big-endian magic `0x0000 TT DD` (type, rank), the
//! dimensions as big-endian u32, then the values. Reads plain or gzipped bytes and checks
//! every length, so truncated or foreign files are refused rather than misread.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// An unsigned-byte IDX array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[10000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// IDX element type code for unsigned bytes, the only one the data sets use.
const UBYTE: u8 = 0x08;

/// Most bytes a gzipped IDX file may decompress to by default (the largest data set file,
/// Fashion-MNIST's training images, is 47 MB): a small file that inflates past it is refused,
/// not followed. [`super::ReadLimits`] changes it.
pub const MAX_IDX_BYTES: u64 = super::ReadLimits::DEFAULT.max_inflate_bytes;

/// Parses IDX bytes (gzipped or plain); `origin` names the source in error messages.
pub fn parse_idx(bytes: &[u8], origin: &Path) -> Result<IdxArray> {
    parse_idx_within(
        bytes,
        origin,
        super::ReadLimits::current().max_inflate_bytes,
    )
}

/// [`parse_idx`] with a cap on the decompressed size.
fn parse_idx_within(bytes: &[u8], origin: &Path, cap: u64) -> Result<IdxArray> {
    let raw;
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::format(origin, format!("corrupt or truncated gzip stream ({e})"))
            })?;
        if out.len() as u64 > cap {
            return Err(Error::format(
                origin,
                format!(
                    "decompresses to more than {cap} bytes: not an IDX file of a supported data \
                     set (--max-inflate-mib raises the limit)"
                ),
            ));
        }
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    if bytes.len() < 4 {
        return Err(Error::format(
            origin,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    let (zero, kind, rank) = (&bytes[..2], bytes[2], bytes[3] as usize);
    if zero != [0, 0] || kind != UBYTE || rank == 0 || rank > 4 {
        return Err(Error::format(
            origin,
            format!(
                "bad IDX magic {:02x}{:02x}{:02x}{:02x} (expected 000008 then a rank of 1-4): not an unsigned-byte IDX file",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(Error::format(origin, "truncated IDX header"));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::format(origin, format!("IDX dimensions {dims:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() != expected {
        return Err(Error::format(
            origin,
            format!(
                "IDX dimensions {dims:?} promise {expected} bytes but the file holds {} ({})",
                body.len(),
                if body.len() < expected {
                    "truncated"
                } else {
                    "trailing garbage"
                }
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Reads and parses an IDX file.
pub(crate) fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_idx(&bytes, path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Encodes an unsigned-byte IDX array, optionally gzipped.
    pub(crate) fn encode(dims: &[u32], data: &[u8], gzip: bool) -> Vec<u8> {
        let mut out = vec![0, 0, UBYTE, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&out).unwrap();
            enc.finish().unwrap()
        } else {
            out
        }
    }

    #[test]
    fn round_trips_plain_and_gzip() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
        for gzip in [false, true] {
            let arr = parse_idx(&encode(&[2, 3, 4], &data, gzip), Path::new("x")).unwrap();
            assert_eq!(arr.dims, vec![2, 3, 4]);
            assert_eq!(arr.data, data);
        }
    }

    #[test]
    fn refuses_bad_files() {
        let good = encode(&[2, 3], &[1, 2, 3, 4, 5, 6], false);
        let p = Path::new("f");
        let err = |b: &[u8]| parse_idx(b, p).unwrap_err().to_string();
        assert!(err(&good[..good.len() - 1]).contains("truncated"));
        assert!(err(&[good.clone(), vec![9]].concat()).contains("trailing"));
        let mut wrong_magic = good.clone();
        wrong_magic[2] = 0x0d;
        assert!(err(&wrong_magic).contains("magic"));
        assert!(err(&[1, 2]).contains("too short"));
        let gz = encode(&[2, 3], &[1, 2, 3, 4, 5, 6], true);
        assert!(err(&gz[..gz.len() / 2]).contains("gzip"));
        assert!(err(b"hello world, not idx").contains("magic"));
    }

    /// A gzip stream that inflates past the cap is refused after reading one byte more than
    /// the cap, whatever its header promises.
    #[test]
    fn a_decompression_bomb_is_refused_at_the_cap() {
        let big = encode(&[64, 1024], &vec![0; 64 * 1024], true);
        assert!(big.len() < 1024, "{} bytes compressed", big.len());
        let p = Path::new("bomb.gz");
        let e = parse_idx_within(&big, p, 32 << 20).unwrap();
        assert_eq!(e.dims, [64, 1024]);
        let err = parse_idx_within(&big, p, 1 << 15).unwrap_err().to_string();
        assert!(
            err.contains("bomb.gz") && err.contains("decompresses to more than"),
            "{err}"
        );
    }
}
