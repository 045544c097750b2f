//! The query/train/database split of DeepHash-pytorch's CIFAR-10 protocol, drawn per class
//! from a seed: 100 queries and 500 training images per class, the rest as database. With
//! [`TrainSize::All`] every non-query image trains and forms the database (`cifar10-2` style).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ImageSet;
use crate::{Error, Result};

/// How many images per class go to training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainSize {
    /// This many images per class; the database is everything neither query nor train.
    PerClass(usize),
    /// Every non-query image; the database is the same images.
    All,
}

impl std::str::FromStr for TrainSize {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "all" {
            return Ok(Self::All);
        }
        let total: usize = s.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "train size `{s}` is neither `all` nor a whole number of images"
            ))
        })?;
        if total == 0 {
            return Err(Error::InvalidArgument(
                "train size 0: train on at least 1 image per class, or `all`".into(),
            ));
        }
        Ok(Self::PerClass(total))
    }
}

/// Parameters of the split protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Query images per class.
    pub query_per_class: usize,
    /// Training images.
    pub train: TrainSize,
    /// Seed of the per-class shuffles.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            query_per_class: 100,
            train: TrainSize::PerClass(500),
            seed: 0,
        }
    }
}

/// Indices into an [`ImageSet`] for each role, each list in increasing order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Query images.
    pub query: Vec<usize>,
    /// Training images.
    pub train: Vec<usize>,
    /// Database (retrieval set) images.
    pub database: Vec<usize>,
}

impl SplitConfig {
    /// Draws the split of `set`: stratified per class for single-label data; for multi-label
    /// data (as DeepHash-pytorch does for NUS-WIDE and COCO) a uniform draw of the same totals.
    ///
    /// Fails when a class (or the whole set) has fewer images than the quotas need.
    pub fn split(&self, set: &ImageSet) -> Result<Split> {
        if set.is_multi_label() {
            return self.split_uniform(set);
        }
        let mut by_class = vec![Vec::new(); set.num_classes()];
        for (i, l) in set.labels.iter().enumerate() {
            let c = l.primary().ok_or_else(|| {
                Error::InvalidArgument(format!("{}: image {i} has no label", set.name))
            })?;
            by_class[c].push(i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (mut query, mut train, mut database) = (Vec::new(), Vec::new(), Vec::new());
        for (c, members) in by_class.iter_mut().enumerate() {
            let need = self.query_per_class
                + match self.train {
                    TrainSize::PerClass(t) => t,
                    TrainSize::All => 0,
                };
            if members.len() < need {
                return Err(Error::InvalidArgument(format!(
                    "{}: class {c} ({}) has {} images, the split needs {need} ({} query + training); use a smaller --train-size or a larger data set",
                    set.name,
                    set.class_names[c],
                    members.len(),
                    self.query_per_class
                )));
            }
            members.shuffle(&mut rng);
            let (q, rest) = members.split_at(self.query_per_class);
            query.extend_from_slice(q);
            match self.train {
                TrainSize::PerClass(t) => {
                    train.extend_from_slice(&rest[..t]);
                    database.extend_from_slice(&rest[t..]);
                }
                TrainSize::All => {
                    train.extend_from_slice(rest);
                    database.extend_from_slice(rest);
                }
            }
        }
        Ok(Self::finish(query, train, database))
    }

    fn split_uniform(&self, set: &ImageSet) -> Result<Split> {
        let classes = set.num_classes();
        let q = self.query_per_class * classes;
        let t = match self.train {
            TrainSize::PerClass(t) => t * classes,
            TrainSize::All => 0,
        };
        if set.len() <= q + t {
            return Err(Error::InvalidArgument(format!(
                "{}: {} images cannot give {q} queries, {t} training images and a database",
                set.name,
                set.len()
            )));
        }
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed));
        let (query, rest) = order.split_at(q);
        let (train, database) = match self.train {
            TrainSize::PerClass(_) => (rest[..t].to_vec(), rest[t..].to_vec()),
            TrainSize::All => (rest.to_vec(), rest.to_vec()),
        };
        Ok(Self::finish(query.to_vec(), train, database))
    }

    fn finish(mut query: Vec<usize>, mut train: Vec<usize>, mut database: Vec<usize>) -> Split {
        for v in [&mut query, &mut train, &mut database] {
            v.sort_unstable();
        }
        Split {
            query,
            train,
            database,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabelSet;

    fn toy(per_class: usize) -> ImageSet {
        let n = per_class * 3;
        ImageSet::new(
            "toy",
            "test",
            [1, 1, 1],
            vec![0; n],
            (0..n).map(|i| LabelSet::single(i % 3)).collect(),
            vec!["a".into(), "b".into(), "c".into()],
        )
        .unwrap()
    }

    #[test]
    fn per_class_quotas_disjoint_and_deterministic() {
        let set = toy(20);
        let cfg = SplitConfig {
            query_per_class: 2,
            train: TrainSize::PerClass(5),
            seed: 7,
        };
        let s = cfg.split(&set).unwrap();
        assert_eq!(
            (s.query.len(), s.train.len(), s.database.len()),
            (6, 15, 39)
        );
        for c in 0..3 {
            assert_eq!(s.query.iter().filter(|&&i| i % 3 == c).count(), 2);
        }
        let mut all: Vec<_> = [&s.query[..], &s.train, &s.database].concat();
        all.sort_unstable();
        assert_eq!(all, (0..60).collect::<Vec<_>>());
        assert_eq!(s, cfg.split(&set).unwrap());
        let other = SplitConfig { seed: 8, ..cfg }.split(&set).unwrap();
        assert_ne!(s.query, other.query);
    }

    #[test]
    fn train_all_makes_database_equal_train() {
        let s = SplitConfig {
            query_per_class: 2,
            train: TrainSize::All,
            seed: 1,
        }
        .split(&toy(10))
        .unwrap();
        assert_eq!(s.train, s.database);
        assert_eq!(s.train.len(), 24);
    }

    #[test]
    fn too_small_classes_are_refused() {
        let err = SplitConfig::default().split(&toy(50)).unwrap_err();
        assert!(err.to_string().contains("has 50 images"), "{err}");
    }

    #[test]
    fn multi_label_sets_are_split_uniformly() {
        let mut set = toy(10);
        set.labels[0] = LabelSet::from_classes([0, 1]);
        let s = SplitConfig {
            query_per_class: 2,
            train: TrainSize::PerClass(3),
            seed: 2,
        }
        .split(&set)
        .unwrap();
        assert_eq!((s.query.len(), s.train.len(), s.database.len()), (6, 9, 15));
    }

    #[test]
    fn parses_train_size() {
        assert_eq!("all".parse::<TrainSize>().unwrap(), TrainSize::All);
        assert_eq!(
            "300".parse::<TrainSize>().unwrap(),
            TrainSize::PerClass(300)
        );
        assert!("lots".parse::<TrainSize>().is_err());
        assert!("0".parse::<TrainSize>().is_err());
    }
}
