//! The image-folder layout: `ROOT/<class>/**/*.{jpg,png,...}`, one class per top-level folder
//! (images in its sub-folders count for it), decoded into memory and then split with the
//! per-class protocol of [`super::SplitConfig`].

use std::path::{Path, PathBuf};

use super::ImageSet;
use super::decode::{BadImage, ImageGeometry};
use super::labels::LabelSet;
use super::listfile::check_memory;
use super::store::decode_images;
use crate::progress::Progress;
use crate::{Error, Result};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "gif", "bmp", "webp"];

/// What a folder holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderScan {
    /// Class names: the top-level folders, sorted.
    pub classes: Vec<String>,
    /// Every image file with its class, sorted by path.
    pub images: Vec<(PathBuf, usize)>,
    /// Files that are not images by their extension (sounds, descriptions, ...), left out.
    pub ignored: Vec<PathBuf>,
}

/// Whether `path`'s extension names an image format hashguard reads.
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Lists the classes and images under `root`.
pub fn scan_folder(root: &Path) -> Result<FolderScan> {
    if !root.is_dir() {
        return Err(Error::DataNotFound(format!(
            "image folder {} does not exist (expected ROOT/<class>/<image files>)",
            root.display()
        )));
    }
    let mut class_dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    class_dirs.sort();
    if class_dirs.len() > LabelSet::MAX_CLASSES {
        return Err(Error::InvalidArgument(format!(
            "{} has {} class folders; at most {} are supported",
            root.display(),
            class_dirs.len(),
            LabelSet::MAX_CLASSES
        )));
    }
    let (mut classes, mut images, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
    for dir in class_dirs {
        let mut files = Vec::new();
        walk(&dir, &mut files)?;
        files.sort();
        let (imgs, other): (Vec<_>, Vec<_>) = files.into_iter().partition(|p| is_image_file(p));
        ignored.extend(other);
        if imgs.is_empty() {
            ignored.push(dir);
            continue;
        }
        let class = classes.len();
        classes.push(
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        images.extend(imgs.into_iter().map(|p| (p, class)));
    }
    if classes.len() < 2 {
        return Err(Error::DataNotFound(format!(
            "{} holds {} class folder(s) with images; a hashing data set needs at least 2 \
             (expected ROOT/<class>/<image files>)",
            root.display(),
            classes.len()
        )));
    }
    Ok(FolderScan {
        classes,
        images,
        ignored,
    })
}

/// Decodes every image of the folder at `root` with geometry `g`; returns the set, the images
/// skipped as unreadable (with `skip_bad`) and the number of non-image files left out. With
/// `cache`, the images are decoded into (or read back from) a pixel file in that directory.
pub fn load_folder(
    root: &Path,
    g: ImageGeometry,
    skip_bad: bool,
    cache: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<(ImageSet, Vec<BadImage>, usize)> {
    let scan = scan_folder(root)?;
    let n = scan.images.len();
    if cache.is_none() {
        check_memory(g.stored().image_len() as u64 * n as u64, n, g)?;
    }
    let paths: Vec<PathBuf> = scan.images.iter().map(|(p, _)| p.clone()).collect();
    let (pixels, kept, skipped) = decode_images(&paths, g.stored(), skip_bad, cache, progress)?;
    let labels = kept
        .iter()
        .map(|&i| LabelSet::single(scan.images[i].1))
        .collect();
    let name = root
        .file_name()
        .map_or("image-folder".into(), |n| n.to_string_lossy().into_owned());
    let set = ImageSet::framed(
        name,
        root.display().to_string(),
        [3, g.crop as usize, g.crop as usize],
        g.frame(),
        pixels,
        labels,
        scan.classes,
    )?;
    Ok((set, skipped, scan.ignored.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn classes_are_top_level_folders_and_other_files_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (class, n) in [("cats", 3), ("dogs", 2)] {
            for i in 0..n {
                let p = root.join(class).join(if i == 0 { "sub" } else { "" });
                std::fs::create_dir_all(&p).unwrap();
                image::RgbImage::from_pixel(5, 7, image::Rgb([i as u8 * 50, 1, 2]))
                    .save(p.join(format!("{i}.PNG")))
                    .unwrap();
            }
        }
        std::fs::write(root.join("cats/readme.txt"), "not an image").unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        let scan = scan_folder(root).unwrap();
        assert_eq!(scan.classes, vec!["cats", "dogs"]);
        assert_eq!(scan.images.len(), 5);
        assert_eq!(scan.ignored.len(), 2);
        let g = ImageGeometry { resize: 6, crop: 4 };
        let (set, skipped, ignored) = load_folder(root, g, false, None, &mut Silent).unwrap();
        assert_eq!((set.len(), skipped.len(), ignored), (5, 0, 2));
        assert_eq!(set.labels[4], LabelSet::single(1));
        // A corrupt file with an image extension is an error naming it.
        std::fs::write(root.join("dogs/broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
        let err = load_folder(root, g, false, None, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.jpg"), "{err}");
        let (set, skipped, _) = load_folder(root, g, true, None, &mut Silent).unwrap();
        assert_eq!((set.len(), skipped.len()), (5, 1));
    }

    #[test]
    fn a_missing_folder_says_what_is_expected() {
        let err = scan_folder(Path::new("/nonexistent/x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ROOT/<class>"), "{err}");
    }
}
