//! Caps on what a file can make hashguard allocate: an image's sides and its decoder's memory,
//! and how far a gzip stream is inflated. The defaults fit every supported data set; a program
//! sets them once at start-up (the CLI's `--max-image-side`, `--max-image-mib`, `--max-inflate-mib`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::{Error, Result};

/// Limits every reader checks a file's claims against before allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest width or height of an image to decode, in pixels (checked from the header).
    pub max_side: u32,
    /// Largest allocation an image decoder may make for one image, in bytes.
    pub max_decode_bytes: u64,
    /// Most bytes a gzipped data file (IDX) may inflate to: a small file that inflates past
    /// it is refused, not followed.
    pub max_inflate_bytes: u64,
}

static SIDE: AtomicU32 = AtomicU32::new(ReadLimits::DEFAULT.max_side);
static DECODE: AtomicU64 = AtomicU64::new(ReadLimits::DEFAULT.max_decode_bytes);
static INFLATE: AtomicU64 = AtomicU64::new(ReadLimits::DEFAULT.max_inflate_bytes);

impl ReadLimits {
    /// 16,384 pixels a side, 512 MiB per decoded image, 1 GiB inflated (the largest data set
    /// file, Fashion-MNIST's training images, is 47 MB inflated).
    pub const DEFAULT: Self = Self {
        max_side: 16_384,
        max_decode_bytes: 512 << 20,
        max_inflate_bytes: 1 << 30,
    };

    /// The limits in force (the defaults unless [`ReadLimits::install`] changed them).
    pub fn current() -> Self {
        Self {
            max_side: SIDE.load(Ordering::Relaxed),
            max_decode_bytes: DECODE.load(Ordering::Relaxed),
            max_inflate_bytes: INFLATE.load(Ordering::Relaxed),
        }
    }

    /// Puts these limits in force for every later read of this process.
    ///
    /// # Errors
    /// If a limit is zero (nothing could be read).
    pub fn install(self) -> Result<()> {
        if self.max_side == 0 || self.max_decode_bytes == 0 || self.max_inflate_bytes == 0 {
            return Err(Error::InvalidArgument(format!(
                "read limits must be positive, got {self:?}"
            )));
        }
        SIDE.store(self.max_side, Ordering::Relaxed);
        DECODE.store(self.max_decode_bytes, Ordering::Relaxed);
        INFLATE.store(self.max_inflate_bytes, Ordering::Relaxed);
        Ok(())
    }
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
