//! Where a set's pixels live: in memory, or in a cache file of decoded and resized images that is
//! read one image at a time, so data sets larger than memory train in bounded memory and later
//! runs skip decoding. Decoding streams in chunks on worker threads into either.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::decode::{BadImage, ImageGeometry, decode_file, parallel_map, transform};
use crate::progress::Progress;
use crate::{Error, Result};

/// First bytes of a pixel cache file.
const MAGIC: &[u8; 8] = b"HGPIX001";
/// Header: magic, image count, bytes per image.
const HEADER: u64 = 24;

/// A set's pixel bytes.
#[derive(Clone, Debug)]
pub enum Pixels {
    /// All images in one buffer.
    Memory(Vec<u8>),
    /// Images in a cache file, read on demand.
    Disk(Arc<DiskPixels>),
}

impl Pixels {
    /// Total bytes of pixels.
    pub fn len(&self) -> usize {
        match self {
            Pixels::Memory(v) => v.len(),
            Pixels::Disk(d) => d.count * d.image_len,
        }
    }

    /// Whether there are no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `start..start + len` (image-aligned or not).
    pub fn range(&self, start: usize, len: usize) -> Cow<'_, [u8]> {
        match self {
            Pixels::Memory(v) => Cow::Borrowed(&v[start..start + len]),
            Pixels::Disk(d) => Cow::Owned(d.read(start as u64, len)),
        }
    }
}

/// Images stored back to back in a cache file (after a 24-byte header).
#[derive(Debug)]
pub struct DiskPixels {
    path: PathBuf,
    file: Mutex<File>,
    count: usize,
    image_len: usize,
}

impl DiskPixels {
    /// Opens a cache file holding `count` images of `image_len` bytes, checking its header
    /// and length.
    pub fn open(path: &Path, count: usize, image_len: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let stale = |what: &str| {
            Error::record(
                path,
                format!("image cache {what}: delete the file to decode the images again"),
            )
        };
        let mut header = [0u8; HEADER as usize];
        read_exact_at(&file, &mut header, 0).map_err(|_| stale("is truncated"))?;
        let field = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        if &header[..8] != MAGIC || field(8) != count as u64 || field(16) != image_len as u64 {
            return Err(stale("does not match the images"));
        }
        let expected = HEADER + count as u64 * image_len as u64;
        let actual = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if actual != expected {
            return Err(stale("is truncated"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            count,
            image_len,
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `len` pixel bytes from `offset` (past the header).
    ///
    /// # Panics
    /// If the file cannot be read any more (a failing disk: the file is held open, so
    /// deleting or replacing it does not affect a running process).
    fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = read_exact_at(&file, &mut out, HEADER + offset) {
            panic!("reading the image cache {}: {e}", self.path.display());
        }
        out
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// What a cache directory records beside each pixel file.
#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    /// Positions (in the input path list) of the images in the file, in order.
    kept: Vec<usize>,
    /// Images that could not be decoded (with `--skip-bad-images`).
    bad: Vec<(PathBuf, String)>,
    /// Bytes per image.
    image_len: usize,
}

/// The cache key of decoding `paths` with `g`: each path with its size and modification time,
/// the geometry, the transform's version and whether bad images are skipped.
fn cache_key(paths: &[PathBuf], g: ImageGeometry, skip_bad: bool) -> String {
    let mut bytes = Vec::with_capacity(paths.len() * 64);
    let version = super::decode::TRANSFORM_VERSION;
    bytes.extend_from_slice(format!("{version}:{}:{}:{skip_bad}", g.resize, g.crop).as_bytes());
    for p in paths {
        bytes.extend_from_slice(p.as_os_str().as_encoded_bytes());
        bytes.push(0);
        if let Ok(m) = std::fs::metadata(p) {
            bytes.extend_from_slice(&m.len().to_le_bytes());
            if let Ok(t) = m.modified()
                && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
            {
                bytes.extend_from_slice(&d.as_nanos().to_le_bytes());
            }
        }
    }
    super::fingerprint(bytes)
}

/// Images decoded per chunk on each worker thread: the most decoded images alive at once is
/// this times the thread count (a few hundred megabytes at 224x224).
const CHUNK_PER_THREAD: usize = 64;

/// Decodes `paths` with geometry `g` in chunks on worker threads, in list order: into memory,
/// or (with `cache`) into a pixel file under that directory, reused as long as the files,
/// their sizes and modification times and the geometry are the same. Returns the pixels, the
/// positions of the images kept and the ones skipped as unreadable (with `skip_bad`; without,
/// the first unreadable image is the error).
pub fn decode_images(
    paths: &[PathBuf],
    g: ImageGeometry,
    skip_bad: bool,
    cache: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<(Pixels, Vec<usize>, Vec<BadImage>)> {
    let Some(dir) = cache else {
        let mut pixels = Vec::new();
        let (kept, bad) = decode_chunks(paths, g, skip_bad, progress, |bytes| {
            pixels.extend_from_slice(bytes);
            Ok(())
        })?;
        pixels.shrink_to_fit();
        return Ok((Pixels::Memory(pixels), kept, bad));
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let key = cache_key(paths, g, skip_bad);
    let pixel_path = dir.join(format!("{key}.pixels"));
    let entry_path = dir.join(format!("{key}.json"));
    if let Ok(text) = std::fs::read_to_string(&entry_path)
        && let Ok(entry) = serde_json::from_str::<CacheEntry>(&text)
        && entry.image_len == g.image_len()
        && let Ok(disk) = DiskPixels::open(&pixel_path, entry.kept.len(), entry.image_len)
    {
        let bad = entry
            .bad
            .into_iter()
            .map(|(path, reason)| BadImage { path, reason })
            .collect();
        return Ok((Pixels::Disk(Arc::new(disk)), entry.kept, bad));
    }
    // Build it under a temporary name, then rename: a killed run leaves no cache that looks
    // complete.
    let tmp = dir.join(format!("{key}.pixels.tmp-{}", std::process::id()));
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header_placeholder = [0u8; HEADER as usize];
    out.write_all(&header_placeholder)
        .map_err(|e| Error::io(&tmp, e))?;
    let result = decode_chunks(paths, g, skip_bad, progress, |bytes| {
        out.write_all(bytes).map_err(|e| Error::io(&tmp, e))
    });
    let finish = |kept: &[usize]| -> Result<()> {
        let mut file = out
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(kept.len() as u64).to_le_bytes());
        header.extend_from_slice(&(g.image_len() as u64).to_le_bytes());
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header))
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&tmp, e))
    };
    let (kept, bad) = match result.and_then(|(kept, bad)| finish(&kept).map(|_| (kept, bad))) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &pixel_path).map_err(|e| Error::io(&pixel_path, e))?;
    let entry = CacheEntry {
        kept: kept.clone(),
        bad: bad
            .iter()
            .map(|b: &BadImage| (b.path.clone(), b.reason.clone()))
            .collect(),
        image_len: g.image_len(),
    };
    crate::run::write_atomic(
        &entry_path,
        &serde_json::to_vec(&entry).expect("cache entry serialises"),
    )?;
    let disk = DiskPixels::open(&pixel_path, kept.len(), g.image_len())?;
    Ok((Pixels::Disk(Arc::new(disk)), kept, bad))
}

/// Decodes `paths` chunk by chunk (each chunk on worker threads), handing each kept image's
/// bytes to `sink` in list order.
fn decode_chunks(
    paths: &[PathBuf],
    g: ImageGeometry,
    skip_bad: bool,
    progress: &mut dyn Progress,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<(Vec<usize>, Vec<BadImage>)> {
    let n = paths.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = CHUNK_PER_THREAD * threads;
    progress.phase("decoding images", n as u64);
    let (mut kept, mut bad) = (Vec::with_capacity(n), Vec::new());
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let part = &paths[start..end];
        let decoded = parallel_map(
            part.len(),
            |i| decode_file(&part[i]).map(|img| transform(&img, g)),
            &mut ChunkProgress { inner: progress },
        );
        for (i, result) in decoded.into_iter().enumerate() {
            match result {
                Ok(bytes) => {
                    sink(&bytes)?;
                    kept.push(start + i);
                }
                Err(e) if skip_bad => bad.push(BadImage {
                    path: part[i].clone(),
                    reason: e.to_string(),
                }),
                Err(e) => {
                    return Err(Error::InvalidArgument(format!(
                        "{e} (fix or remove the file, or pass --skip-bad-images to leave such \
                         images out)"
                    )));
                }
            }
        }
        start = end;
    }
    progress.finish();
    Ok((kept, bad))
}

/// Passes a chunk's per-image ticks on to the whole decoding's phase (no phase per chunk).
struct ChunkProgress<'a> {
    inner: &'a mut dyn Progress,
}

impl Progress for ChunkProgress<'_> {
    fn phase(&mut self, _what: &str, _total: u64) {}

    fn message(&mut self, message: &str) {
        self.inner.message(message);
    }

    fn inc(&mut self, n: u64) {
        self.inner.inc(n);
    }

    fn log(&mut self, line: &str) {
        self.inner.log(line);
    }

    fn finish(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    /// Counts decoded images.
    #[derive(Default)]
    struct Ticks(u64);

    impl Progress for Ticks {
        fn phase(&mut self, _what: &str, _total: u64) {}
        fn message(&mut self, _message: &str) {}
        fn inc(&mut self, n: u64) {
            self.0 += n;
        }
        fn log(&mut self, _line: &str) {}
        fn finish(&mut self) {}
    }

    fn images(dir: &Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("{i}.png"));
                image::RgbImage::from_fn(12, 9, |x, y| {
                    image::Rgb([(x * 20) as u8, (y * 25) as u8, (i * 40) as u8])
                })
                .save(&p)
                .unwrap();
                p
            })
            .collect()
    }

    #[test]
    fn the_cache_holds_what_memory_holds_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let mut paths = images(dir.path(), 5);
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not an image").unwrap();
        paths.insert(2, bad);
        let g = ImageGeometry { resize: 8, crop: 6 };
        let (memory, kept, skipped) = decode_images(&paths, g, true, None, &mut Silent).unwrap();
        assert!(matches!(memory, Pixels::Memory(_)));
        let mut ticks = Ticks::default();
        let (disk, kept_d, skipped_d) =
            decode_images(&paths, g, true, Some(&cache), &mut ticks).unwrap();
        assert!(matches!(disk, Pixels::Disk(_)));
        assert_eq!(ticks.0, 6);
        assert_eq!((kept_d, skipped_d.len()), (kept.clone(), skipped.len()));
        assert_eq!(kept, [0, 1, 3, 4, 5]);
        assert_eq!(memory.len(), disk.len());
        assert_eq!(memory.range(0, memory.len()), disk.range(0, disk.len()));
        assert_eq!(memory.range(7, 30), disk.range(7, 30));

        // Reused: nothing is decoded the second time, skipped images included.
        let mut again = Ticks::default();
        let (reused, kept_r, skipped_r) =
            decode_images(&paths, g, true, Some(&cache), &mut again).unwrap();
        assert_eq!(again.0, 0);
        assert_eq!((kept_r, skipped_r.len()), (kept, 1));
        assert_eq!(reused.range(0, reused.len()), memory.range(0, memory.len()));

        // A truncated cache file is rebuilt, and no temporary file is left.
        let Pixels::Disk(d) = &reused else { panic!() };
        let file = d.path().to_path_buf();
        let len = std::fs::metadata(&file).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let mut rebuilt = Ticks::default();
        decode_images(&paths, g, true, Some(&cache), &mut rebuilt).unwrap();
        assert_eq!(rebuilt.0, 6);
        let names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");

        // Another geometry is another cache file.
        let g2 = ImageGeometry { resize: 8, crop: 8 };
        let (other, _, _) = decode_images(&paths, g2, true, Some(&cache), &mut Silent).unwrap();
        assert_eq!(other.len(), 5 * g2.image_len());
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 4);
    }

    #[test]
    fn a_failed_decode_leaves_no_cache_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let mut paths = images(dir.path(), 2);
        paths.push(dir.path().join("missing.png"));
        let g = ImageGeometry { resize: 8, crop: 6 };
        let err = decode_images(&paths, g, false, Some(&cache), &mut Silent).unwrap_err();
        assert!(err.to_string().contains("missing.png"), "{err}");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    }
}
