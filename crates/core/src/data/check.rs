//! `hashguard data check`: validates a list-file data set or an image folder before any
//! training — unreadable lists, missing or undecodable images, duplicate paths, images in
//! several roles, empty roles — and summarises each role's size and class histogram.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::decode::{decode_file, parallel_map};
use super::folder::scan_folder;
use super::listfile::{ImageList, LIST_FILES, ListPreset, read_list};
use crate::Result;
use crate::progress::Progress;

/// One thing wrong with a data set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The list file or image concerned.
    pub file: PathBuf,
    /// The line of the list file, when the problem is on one.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub what: String,
}

/// What one role (query, train, database; or the whole folder) holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSummary {
    /// `query`, `train`, `database` or `folder`.
    pub role: String,
    /// The list file read (the folder itself for the folder layout).
    pub file: PathBuf,
    /// Entries (lines or image files).
    pub entries: usize,
    /// Entries whose path appears earlier in the same list.
    pub duplicates: usize,
    /// Entries whose image file does not exist.
    pub missing: usize,
    /// Entries whose image file exists but cannot be decoded.
    pub unreadable: usize,
    /// Entries with an all-zero label vector (never relevant to any query).
    pub unlabelled: usize,
    /// Images per class (an image with several labels counts for each).
    pub class_histogram: Vec<usize>,
}

/// The report of `hashguard data check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCheckReport {
    /// The image root (or folder).
    pub root: PathBuf,
    /// The list directory (`None` for the folder layout).
    pub lists: Option<PathBuf>,
    /// The preset the lists were checked against.
    pub preset: Option<ListPreset>,
    /// Number of classes (label vector length, or class folders).
    pub classes: usize,
    /// Class names (folder layout) — list files carry none.
    pub class_names: Vec<String>,
    /// Per role.
    pub roles: Vec<RoleSummary>,
    /// Queries that are also training images (a model would be tested on what it learnt).
    pub query_in_train: usize,
    /// Queries that are also database images (they would retrieve themselves).
    pub query_in_database: usize,
    /// Files in the folder that are not images by their extension (left out).
    pub ignored_files: usize,
    /// Every problem found (at most [`MAX_PROBLEMS`] listed; the counts above are complete).
    pub problems: Vec<Problem>,
    /// Whether the data set can be trained on as it is.
    pub ok: bool,
}

/// Most problems a report lists one by one.
pub const MAX_PROBLEMS: usize = 200;

enum ImageState {
    Ok,
    Missing,
    Unreadable(String),
}

fn probe(path: &Path) -> ImageState {
    if !path.is_file() {
        return ImageState::Missing;
    }
    match decode_file(path) {
        Ok(_) => ImageState::Ok,
        Err(e) => ImageState::Unreadable(e.to_string()),
    }
}

/// Checks the list files in `lists` (images under `root`) against `preset`, decoding every
/// listed image once on worker threads.
pub fn check_lists(
    root: &Path,
    lists: &Path,
    preset: ListPreset,
    progress: &mut dyn Progress,
) -> Result<DataCheckReport> {
    let mut problems = Vec::new();
    let mut parsed: Vec<(&str, PathBuf, Option<ImageList>)> = Vec::new();
    for (role, name) in LIST_FILES {
        let file = lists.join(name);
        match read_list(&file) {
            Ok(list) => parsed.push((role, file, Some(list))),
            Err(e) => {
                problems.push(Problem {
                    file: file.clone(),
                    line: None,
                    what: e.to_string(),
                });
                parsed.push((role, file, None));
            }
        }
    }
    let lens: Vec<usize> = parsed
        .iter()
        .filter_map(|p| p.2.as_ref().map(|l| l.label_len))
        .collect();
    let classes = preset
        .classes()
        .or_else(|| lens.first().copied())
        .unwrap_or(0);
    for (_, file, list) in &parsed {
        if let Some(list) = list
            && list.label_len != classes
        {
            problems.push(Problem {
                file: file.clone(),
                line: Some(list.entries[0].line),
                what: format!(
                    "label vectors of length {}, expected {classes}{}",
                    list.label_len,
                    if preset == ListPreset::Generic {
                        String::new()
                    } else {
                        format!(" ({})", preset.name())
                    }
                ),
            });
        }
    }
    // Every distinct image once.
    let mut unique: Vec<&str> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, _, list) in &parsed {
        for e in list.iter().flat_map(|l| &l.entries) {
            seen.entry(&e.path).or_insert_with(|| {
                unique.push(&e.path);
                unique.len() - 1
            });
        }
    }
    progress.phase("checking images", unique.len() as u64);
    let states = parallel_map(unique.len(), |i| probe(&root.join(unique[i])), progress);
    progress.finish();
    let mut roles = Vec::new();
    let mut members: Vec<HashSet<&str>> = Vec::new();
    for (role, file, list) in &parsed {
        let mut summary = RoleSummary {
            role: role.to_string(),
            file: file.clone(),
            entries: 0,
            duplicates: 0,
            missing: 0,
            unreadable: 0,
            unlabelled: 0,
            class_histogram: vec![0; classes],
        };
        let mut paths = HashSet::new();
        for e in list.iter().flat_map(|l| &l.entries) {
            summary.entries += 1;
            let at = |what: String| Problem {
                file: file.clone(),
                line: Some(e.line),
                what,
            };
            if !paths.insert(e.path.as_str()) {
                summary.duplicates += 1;
                problems.push(at(format!("`{}` is listed twice", e.path)));
            }
            match &states[seen[e.path.as_str()]] {
                ImageState::Ok => {}
                ImageState::Missing => {
                    summary.missing += 1;
                    problems.push(at(format!(
                        "{} does not exist",
                        root.join(&e.path).display()
                    )));
                }
                ImageState::Unreadable(why) => {
                    summary.unreadable += 1;
                    problems.push(at(why.clone()));
                }
            }
            if e.labels.count() == 0 {
                summary.unlabelled += 1;
            }
            for c in e.labels.classes().filter(|&c| c < classes) {
                summary.class_histogram[c] += 1;
            }
        }
        if list.is_some() && summary.entries == 0 {
            problems.push(Problem {
                file: file.clone(),
                line: None,
                what: format!("the {role} list is empty"),
            });
        }
        roles.push(summary);
        members.push(paths);
    }
    let overlap = |a: usize, b: usize| members[a].intersection(&members[b]).count();
    let (query_in_train, query_in_database) = (overlap(0, 1), overlap(0, 2));
    for (n, other) in [(query_in_train, "train"), (query_in_database, "database")] {
        if n > 0 {
            problems.push(Problem {
                file: lists.join("test.txt"),
                line: None,
                what: format!("{n} query images are also {other} images"),
            });
        }
    }
    Ok(finish(DataCheckReport {
        root: root.to_path_buf(),
        lists: Some(lists.to_path_buf()),
        preset: Some(preset),
        classes,
        class_names: Vec::new(),
        roles,
        query_in_train,
        query_in_database,
        ignored_files: 0,
        problems,
        ok: false,
    }))
}

/// Checks an image folder (`ROOT/<class>/...`), decoding every image once.
pub fn check_folder(root: &Path, progress: &mut dyn Progress) -> Result<DataCheckReport> {
    let scan = scan_folder(root)?;
    progress.phase("checking images", scan.images.len() as u64);
    let states = parallel_map(scan.images.len(), |i| probe(&scan.images[i].0), progress);
    progress.finish();
    let mut summary = RoleSummary {
        role: "folder".into(),
        file: root.to_path_buf(),
        entries: scan.images.len(),
        duplicates: 0,
        missing: 0,
        unreadable: 0,
        unlabelled: 0,
        class_histogram: vec![0; scan.classes.len()],
    };
    let mut problems = Vec::new();
    for ((path, class), state) in scan.images.iter().zip(states) {
        summary.class_histogram[*class] += 1;
        if let ImageState::Unreadable(why) = state {
            summary.unreadable += 1;
            problems.push(Problem {
                file: path.clone(),
                line: None,
                what: why,
            });
        }
    }
    Ok(finish(DataCheckReport {
        root: root.to_path_buf(),
        lists: None,
        preset: None,
        classes: scan.classes.len(),
        class_names: scan.classes,
        roles: vec![summary],
        query_in_train: 0,
        query_in_database: 0,
        ignored_files: scan.ignored.len(),
        problems,
        ok: false,
    }))
}

fn finish(mut report: DataCheckReport) -> DataCheckReport {
    report.ok = report.problems.is_empty();
    report.problems.truncate(MAX_PROBLEMS);
    report
}

impl DataCheckReport {
    /// A short human-readable summary: one line per role, then the problems.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for r in &self.roles {
            let empty = r.class_histogram.iter().filter(|&&c| c == 0).count();
            out += &format!(
                "{:<8} {:>7} entries ({} duplicate, {} missing, {} unreadable, {} unlabelled); images per class {}..{}{}\n",
                r.role,
                r.entries,
                r.duplicates,
                r.missing,
                r.unreadable,
                r.unlabelled,
                r.class_histogram.iter().min().unwrap_or(&0),
                r.class_histogram.iter().max().unwrap_or(&0),
                if empty > 0 {
                    format!(", {empty} classes without an image")
                } else {
                    String::new()
                }
            );
        }
        if self.ignored_files > 0 {
            out += &format!("{} non-image files left out\n", self.ignored_files);
        }
        for p in &self.problems {
            match p.line {
                Some(line) => out += &format!("{}:{line}: {}\n", p.file.display(), p.what),
                None => out += &format!("{}: {}\n", p.file.display(), p.what),
            }
        }
        out += if self.ok {
            "ok: the data set can be trained on\n"
        } else {
            "problems found: fix them, or pass --skip-bad-images to train without unreadable images\n"
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn finds_the_usual_problems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("img")).unwrap();
        for name in ["a", "b", "c"] {
            image::RgbImage::new(4, 4)
                .save(root.join(format!("img/{name}.png")))
                .unwrap();
        }
        std::fs::write(root.join("img/bad.jpg"), b"not a jpeg").unwrap();
        std::fs::write(root.join("test.txt"), "img/a.png 1 0\nimg/gone.png 0 1\n").unwrap();
        std::fs::write(
            root.join("train.txt"),
            "img/b.png 1 0\nimg/b.png 1 0\nimg/a.png 1 0\n",
        )
        .unwrap();
        std::fs::write(
            root.join("database.txt"),
            "img/c.png 0 1\nimg/bad.jpg 0 0\n",
        )
        .unwrap();
        let report = check_lists(root, root, ListPreset::Generic, &mut Silent).unwrap();
        assert!(!report.ok);
        assert_eq!(report.classes, 2);
        let [q, t, d] = [&report.roles[0], &report.roles[1], &report.roles[2]];
        assert_eq!((q.entries, q.missing), (2, 1));
        assert_eq!((t.entries, t.duplicates), (3, 1));
        assert_eq!((d.unreadable, d.unlabelled), (1, 1));
        assert_eq!(t.class_histogram, vec![3, 0]);
        assert_eq!((report.query_in_train, report.query_in_database), (1, 0));
        let text = report.to_text();
        assert!(
            text.contains("test.txt:2:") && text.contains("gone.png"),
            "{text}"
        );
        // A preset with another label length is flagged per file.
        let report = check_lists(root, root, ListPreset::Coco, &mut Silent).unwrap();
        assert_eq!(report.classes, 80);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.what.contains("expected 80 (coco)"))
        );
    }

    #[test]
    fn a_clean_folder_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["x", "y"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            image::RgbImage::new(3, 3)
                .save(dir.path().join(class).join("0.png"))
                .unwrap();
        }
        let report = check_folder(dir.path(), &mut Silent).unwrap();
        assert!(report.ok, "{}", report.to_text());
        assert_eq!(report.roles[0].class_histogram, vec![1, 1]);
    }
}
