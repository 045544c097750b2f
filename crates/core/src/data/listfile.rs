//! The list-file format of DeepHash-pytorch and the CgAT/SAAT code: `train.txt`, `test.txt`
//! (the queries) and `database.txt` in one directory, each line `relative/path 0 1 0 ...` (a
//! one- or multi-hot label vector), with presets for the field's data sets and mAP cut-offs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::decode::{BadImage, ImageGeometry};
use super::store::decode_images;
use super::{CIFAR10_CLASSES, ImageSet, LabelSet, Split};
use crate::progress::Progress;
use crate::{Error, Result};

/// A data set distributed as list files, with the conventions of the papers that use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListPreset {
    /// Any list files: label length from the files, mAP over the whole ranking.
    Generic,
    /// CIFAR-10 as list files (10 classes, mAP@all; the CgAT code's `cifar10` lists).
    Cifar10,
    /// NUS-WIDE, the 21 most frequent concepts (multi-label, mAP@5000).
    NusWide21,
    /// MS-COCO, 80 categories (multi-label, mAP@5000).
    Coco,
    /// MIRFLICKR-25K, 38 labels as in DeepHash-pytorch's `mirflickr` lists (multi-label,
    /// mAP@all).
    Flickr25k,
    /// ImageNet-100, 100 classes chosen by HashNet (mAP@1000).
    ImageNet100,
}

/// The three roles of a list-file data set, and the file each is read from.
pub const LIST_FILES: [(&str, &str); 3] = [
    ("query", "test.txt"),
    ("train", "train.txt"),
    ("database", "database.txt"),
];

impl ListPreset {
    /// Every preset, in CLI order.
    pub const ALL: [ListPreset; 6] = [
        Self::Generic,
        Self::Cifar10,
        Self::NusWide21,
        Self::Coco,
        Self::Flickr25k,
        Self::ImageNet100,
    ];

    /// The CLI spelling (`--dataset` value).
    pub fn name(self) -> &'static str {
        match self {
            Self::Generic => "list",
            Self::Cifar10 => "cifar10-list",
            Self::NusWide21 => "nus-wide-21",
            Self::Coco => "coco",
            Self::Flickr25k => "flickr25k",
            Self::ImageNet100 => "imagenet100",
        }
    }

    /// Parses the CLI spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Length of the label vectors the preset expects (`None`: whatever the files say).
    pub fn classes(self) -> Option<usize> {
        match self {
            Self::Generic => None,
            Self::Cifar10 => Some(10),
            Self::NusWide21 => Some(21),
            Self::Coco => Some(80),
            Self::Flickr25k => Some(38),
            Self::ImageNet100 => Some(100),
        }
    }

    /// The field's mAP cut-off for the data set (`None`: mAP over the whole ranking).
    pub fn map_topk(self) -> Option<usize> {
        match self {
            Self::Generic | Self::Cifar10 | Self::Flickr25k => None,
            Self::NusWide21 | Self::Coco => Some(5000),
            Self::ImageNet100 => Some(1000),
        }
    }
}

/// One line of a list file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The image path as written (relative to the image root, or absolute).
    pub path: String,
    /// Its labels.
    pub labels: LabelSet,
    /// Line number in the file, from 1.
    pub line: usize,
}

/// A parsed list file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageList {
    /// The file read.
    pub file: PathBuf,
    /// Its entries, in file order.
    pub entries: Vec<ListEntry>,
    /// Length of every label vector in it.
    pub label_len: usize,
}

/// Parses list-file `text` (`file` names it in errors): each non-blank line is a path and a
/// label vector of 0s and 1s, the same length on every line.
pub fn parse_list(text: &str, file: &Path) -> Result<ImageList> {
    let mut entries = Vec::new();
    let mut label_len = None;
    for (i, line) in text.lines().enumerate() {
        let at = |reason: String| Error::format(file, format!("line {}: {reason}", i + 1));
        let mut fields = line.split_whitespace();
        let Some(path) = fields.next() else { continue };
        let mut classes = Vec::new();
        let mut len = 0;
        for (c, v) in fields.enumerate() {
            match v {
                "1" | "1.0" => classes.push(c),
                "0" | "0.0" => {}
                other => {
                    return Err(at(format!(
                        "label value `{other}` is not 0 or 1 (lines read `path 0 1 0 ...`)"
                    )));
                }
            }
            len = c + 1;
        }
        if len == 0 {
            return Err(at(format!("`{path}` has no label vector")));
        }
        if len > LabelSet::MAX_CLASSES {
            return Err(at(format!(
                "{len} labels; at most {} are supported",
                LabelSet::MAX_CLASSES
            )));
        }
        match label_len {
            None => label_len = Some(len),
            Some(expected) if expected != len => {
                return Err(at(format!(
                    "{len} labels where the lines before have {expected}"
                )));
            }
            Some(_) => {}
        }
        entries.push(ListEntry {
            path: path.to_string(),
            labels: LabelSet::from_classes(classes),
            line: i + 1,
        });
    }
    let Some(label_len) = label_len else {
        return Err(Error::format(file, "the list is empty"));
    };
    Ok(ImageList {
        file: file.to_path_buf(),
        entries,
        label_len,
    })
}

/// Reads and parses the list file at `file`.
pub fn read_list(file: &Path) -> Result<ImageList> {
    let bytes = std::fs::read(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::DataNotFound(format!(
            "{} does not exist: --lists DIR must hold {}",
            file.display(),
            LIST_FILES.map(|f| f.1).join(", ")
        )),
        _ => Error::io(file, e),
    })?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::format(file, "the list is not UTF-8 text"))?;
    parse_list(&text, file)
}

/// The three lists of a data set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSet {
    /// `test.txt`: the queries.
    pub query: ImageList,
    /// `train.txt`.
    pub train: ImageList,
    /// `database.txt`: the retrieval set.
    pub database: ImageList,
    /// Length of the label vectors (the number of classes).
    pub classes: usize,
}

impl ListSet {
    /// Reads `test.txt`, `train.txt` and `database.txt` from `dir`, checking that their label
    /// vectors agree with each other and with `preset`.
    pub fn read(dir: &Path, preset: ListPreset) -> Result<Self> {
        let [query, train, database] = LIST_FILES.map(|(_, name)| read_list(&dir.join(name)));
        let (query, train, database) = (query?, train?, database?);
        let classes = query.label_len;
        for list in [&train, &database] {
            if list.label_len != classes {
                return Err(Error::format(
                    &list.file,
                    format!(
                        "label vectors of length {} where {} has {classes}",
                        list.label_len,
                        query.file.display()
                    ),
                ));
            }
        }
        if let Some(expected) = preset.classes()
            && expected != classes
        {
            return Err(Error::format(
                &query.file,
                format!(
                    "label vectors of length {classes}, but {} has {expected} classes (use --dataset list for other label sets)",
                    preset.name()
                ),
            ));
        }
        Ok(Self {
            query,
            train,
            database,
            classes,
        })
    }

    /// The lists in role order (query, train, database).
    pub fn roles(&self) -> [&ImageList; 3] {
        [&self.query, &self.train, &self.database]
    }
}

/// A data set read from files, as images in memory and its roles.
#[derive(Clone, Debug)]
pub struct NaturalData {
    /// The decoded, transformed images.
    pub set: ImageSet,
    /// Which images play which role.
    pub split: Split,
    /// Images left out because they could not be read (with `--skip-bad-images`).
    pub skipped: Vec<BadImage>,
}

/// Names of `classes` classes under `preset`.
fn class_names(preset: ListPreset, classes: usize) -> Vec<String> {
    if preset == ListPreset::Cifar10 {
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|c| format!("label {c}")).collect()
    }
}

/// Reads a list-file data set: the lists in `lists`, images under `root`, each decoded and
/// transformed by `g` (on worker threads, reported to `progress`). An image listed in
/// several roles is decoded once; a query that is also a training or database image is an
/// error (`hashguard data check` lists them all). With `cache` the decoded images go to (or
/// come from) a pixel file in that directory and are read from disk as needed.
pub fn load_lists(
    root: &Path,
    lists: &Path,
    preset: ListPreset,
    g: ImageGeometry,
    skip_bad: bool,
    cache: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<NaturalData> {
    let set = ListSet::read(lists, preset)?;
    // Unique paths, first come first numbered; the same path must carry the same labels.
    let mut index: HashMap<&str, (usize, &ListEntry, &Path)> = HashMap::new();
    let mut unique: Vec<&ListEntry> = Vec::new();
    let mut roles: [Vec<usize>; 3] = Default::default();
    for (role, list) in set.roles().into_iter().enumerate() {
        for e in &list.entries {
            let id = match index.get(e.path.as_str()) {
                Some(&(id, first, first_file)) => {
                    if first.labels != e.labels {
                        return Err(Error::format(
                            &list.file,
                            format!(
                                "line {}: `{}` has other labels than on line {} of {}",
                                e.line,
                                e.path,
                                first.line,
                                first_file.display()
                            ),
                        ));
                    }
                    id
                }
                None => {
                    index.insert(&e.path, (unique.len(), e, &list.file));
                    unique.push(e);
                    unique.len() - 1
                }
            };
            roles[role].push(id);
        }
    }
    let query: std::collections::HashSet<usize> = roles[0].iter().copied().collect();
    let shared = roles[1..]
        .iter()
        .flatten()
        .filter(|i| query.contains(i))
        .count();
    if shared > 0 {
        return Err(Error::InvalidArgument(format!(
            "{shared} query images of {} are also training or database images: a model would be \
             evaluated on images it retrieves trivially (run `hashguard data check` for the list)",
            set.query.file.display()
        )));
    }
    if cache.is_none() {
        check_memory(
            g.stored().image_len() as u64 * unique.len() as u64,
            unique.len(),
            g,
        )?;
    }
    let paths: Vec<PathBuf> = unique.iter().map(|e| root.join(&e.path)).collect();
    let (pixels, kept, skipped) = decode_images(&paths, g.stored(), skip_bad, cache, progress)?;
    // Renumber the roles over the images that were kept.
    let mut new_id = vec![usize::MAX; unique.len()];
    for (n, &old) in kept.iter().enumerate() {
        new_id[old] = n;
    }
    let [query, train, database] = roles.map(|r| {
        let mut v: Vec<usize> = r
            .into_iter()
            .map(|i| new_id[i])
            .filter(|&i| i != usize::MAX)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    });
    for (name, role) in [
        ("query", &query),
        ("train", &train),
        ("database", &database),
    ] {
        if role.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no readable {name} image is left in {}",
                lists.display()
            )));
        }
    }
    let labels = kept.iter().map(|&i| unique[i].labels).collect();
    let image_set = ImageSet::framed(
        preset.name(),
        root.display().to_string(),
        [3, g.crop as usize, g.crop as usize],
        g.frame(),
        pixels,
        labels,
        class_names(preset, set.classes),
    )?;
    Ok(NaturalData {
        set: image_set,
        split: Split {
            query,
            train,
            database,
        },
        skipped,
    })
}

/// Largest decoded data set held in memory; larger ones need an image cache (`--cache DIR`).
pub const MAX_IN_MEMORY_BYTES: u64 = 8 << 30;

/// Refuses data sets whose transformed images would not fit [`MAX_IN_MEMORY_BYTES`].
pub(super) fn check_memory(bytes: u64, images: usize, g: ImageGeometry) -> Result<()> {
    if bytes > MAX_IN_MEMORY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{images} images of {0}x{0} need {1:.1} GiB in memory, over the {2} GiB limit: pass \
             --cache DIR to decode them once into DIR and stream them from disk",
            g.crop,
            bytes as f64 / (1u64 << 30) as f64,
            MAX_IN_MEMORY_BYTES >> 30
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn write_png(path: &Path, shade: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(12, 9, image::Rgb([shade, 255 - shade, 3]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn parses_one_and_multi_hot_lines() {
        let list = parse_list("a.jpg 0 1 0\n\n b/c.png 1 0 1 \n", Path::new("t.txt")).unwrap();
        assert_eq!(list.label_len, 3);
        assert_eq!(list.entries[0].labels, LabelSet::single(1));
        assert_eq!(list.entries[1].labels, LabelSet::from_classes([0, 2]));
        assert_eq!(list.entries[1].line, 3);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let cases = [
            ("a.jpg 0 1\nb.jpg 0 1 0\n", "line 2"),
            ("a.jpg 0 2\n", "not 0 or 1"),
            ("a.jpg\n", "no label vector"),
            ("\n \n", "empty"),
        ];
        for (text, expected) in cases {
            let err = parse_list(text, Path::new("lists/train.txt"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected) && err.contains("train.txt"), "{err}");
        }
    }

    fn fixture(dir: &Path) {
        let lists = dir.join("lists");
        std::fs::create_dir_all(&lists).unwrap();
        for (i, name) in ["q0", "q1", "t0", "t1", "d0"].iter().enumerate() {
            write_png(&dir.join("img").join(format!("{name}.png")), 40 * i as u8);
        }
        std::fs::write(lists.join("test.txt"), "img/q0.png 1 0\nimg/q1.png 0 1\n").unwrap();
        std::fs::write(lists.join("train.txt"), "img/t0.png 1 0\nimg/t1.png 1 1\n").unwrap();
        std::fs::write(
            lists.join("database.txt"),
            "img/t0.png 1 0\nimg/t1.png 1 1\nimg/d0.png 0 1\n",
        )
        .unwrap();
    }

    #[test]
    fn roles_come_from_the_files_and_shared_images_load_once() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let g = ImageGeometry { resize: 8, crop: 8 };
        let data = load_lists(
            dir.path(),
            &dir.path().join("lists"),
            ListPreset::Generic,
            g,
            false,
            None,
            &mut Silent,
        )
        .unwrap();
        assert_eq!(data.set.len(), 5);
        assert_eq!(data.split.query, vec![0, 1]);
        assert_eq!(data.split.train, vec![2, 3]);
        assert_eq!(data.split.database, vec![2, 3, 4]);
        assert_eq!(data.set.labels[3], LabelSet::from_classes([0, 1]));
        assert!(data.set.is_multi_label());
        assert_eq!([data.set.channels, data.set.height], [3, 8]);
        // The preset checks the label length.
        let err = load_lists(
            dir.path(),
            &dir.path().join("lists"),
            ListPreset::Cifar10,
            g,
            false,
            None,
            &mut Silent,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cifar10-list has 10 classes"), "{err}");
    }

    #[test]
    fn missing_images_and_overlapping_queries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let lists = dir.path().join("lists");
        let g = ImageGeometry { resize: 8, crop: 8 };
        std::fs::remove_file(dir.path().join("img/d0.png")).unwrap();
        let load = |skip| {
            load_lists(
                dir.path(),
                &lists,
                ListPreset::Generic,
                g,
                skip,
                None,
                &mut Silent,
            )
        };
        let err = load(false).unwrap_err().to_string();
        assert!(err.contains("d0.png"), "{err}");
        let data = load(true).unwrap();
        assert_eq!(data.skipped.len(), 1);
        assert_eq!(data.split.database, vec![2, 3]);
        std::fs::write(lists.join("train.txt"), "img/q0.png 1 0\n").unwrap();
        let err = load(true).unwrap_err().to_string();
        assert!(err.contains("1 query images"), "{err}");
        std::fs::remove_file(lists.join("train.txt")).unwrap();
        let err = load(true).unwrap_err().to_string();
        assert!(err.contains("train.txt does not exist"), "{err}");
    }

    /// The real CIFAR-10 images shipped with foolbox, as a `cifar10-list` data set.
    #[test]
    fn real_cifar10_pngs_load_pixel_exact_with_their_labels() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/foolbox");
        let mut names: Vec<String> = std::fs::read_dir(&fixtures)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("cifar10_"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 20);
        let line = |n: &String| {
            let label: usize = n
                .trim_end_matches(".png")
                .rsplit('_')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let hot: Vec<&str> = (0..10)
                .map(|c| if c == label { "1" } else { "0" })
                .collect();
            format!("{n} {}\n", hot.join(" "))
        };
        let lists = tempfile::tempdir().unwrap();
        let write = |file: &str, range: std::ops::Range<usize>| {
            let text: String = names[range].iter().map(line).collect();
            std::fs::write(lists.path().join(file), text).unwrap();
        };
        write("test.txt", 0..5);
        write("train.txt", 5..20);
        write("database.txt", 5..20);
        let g = ImageGeometry {
            resize: 32,
            crop: 32,
        };
        let data = load_lists(
            &fixtures,
            lists.path(),
            ListPreset::Cifar10,
            g,
            false,
            None,
            &mut Silent,
        )
        .unwrap();
        assert_eq!(
            (
                data.set.len(),
                data.split.query.len(),
                data.split.database.len()
            ),
            (20, 5, 15)
        );
        assert_eq!(data.set.class_names[3], "cat");
        // cifar10_00_3.png is a cat; its bytes are the PNG's, channel-major.
        assert_eq!(data.set.labels[0], LabelSet::single(3));
        let png = image::open(fixtures.join(&names[0])).unwrap().to_rgb8();
        let img = data.set.image(0);
        for (x, y) in [(0, 0), (31, 0), (7, 19), (31, 31)] {
            let p = png.get_pixel(x, y).0;
            for c in 0..3 {
                assert_eq!(img[c * 1024 + y as usize * 32 + x as usize], p[c]);
            }
        }
        // The ImageNet JPEGs go through the reference geometry.
        let jpg = fixtures.join("imagenet_14_129.jpg");
        let out = super::super::decode::transform(
            &super::super::decode::decode_file(&jpg).unwrap(),
            ImageGeometry::IMAGENET,
        );
        assert_eq!(out.len(), 3 * 224 * 224);
        assert!(out.iter().any(|&v| v > 0) && out.iter().any(|&v| v < 255));
    }
}
