//! Label sets as a 128-bit class mask, so single- and multi-label data share one code path:
//! two items are relevant to each other when their masks intersect.

use serde::{Deserialize, Serialize};

/// The set of classes an image belongs to (at most [`LabelSet::MAX_CLASSES`] classes).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelSet(pub u128);

impl LabelSet {
    /// Largest number of classes a data set may have.
    pub const MAX_CLASSES: usize = 128;

    /// The set holding only `class`.
    ///
    /// # Panics
    /// If `class >= MAX_CLASSES` (readers check class numbers before calling this).
    pub fn single(class: usize) -> Self {
        assert!(class < Self::MAX_CLASSES, "class {class} out of range");
        Self(1u128 << class)
    }

    /// The set of all `classes`.
    pub fn from_classes(classes: impl IntoIterator<Item = usize>) -> Self {
        classes
            .into_iter()
            .fold(Self::default(), |acc, c| acc.union(Self::single(c)))
    }

    /// Both sets' classes.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the two sets share a class (the relevance rule of retrieval).
    pub fn shares(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether `class` is in the set.
    pub fn contains(self, class: usize) -> bool {
        class < Self::MAX_CLASSES && self.0 >> class & 1 == 1
    }

    /// Number of classes in the set.
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The lowest class in the set, used to stratify splits.
    pub fn primary(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }

    /// The highest class in the set.
    pub fn max_class(self) -> Option<usize> {
        (self.0 != 0).then(|| 127 - self.0.leading_zeros() as usize)
    }

    /// The classes in increasing order.
    pub fn classes(self) -> impl Iterator<Item = usize> {
        (0..Self::MAX_CLASSES).filter(move |&c| self.contains(c))
    }
}

impl std::fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.classes()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let a = LabelSet::from_classes([1, 5]);
        let b = LabelSet::single(5);
        let c = LabelSet::single(127);
        assert!(a.shares(b));
        assert!(!a.shares(c));
        assert_eq!(a.count(), 2);
        assert_eq!(a.primary(), Some(1));
        assert_eq!(a.union(c).max_class(), Some(127));
        assert_eq!(a.classes().collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(LabelSet::default().primary(), None);
    }
}
