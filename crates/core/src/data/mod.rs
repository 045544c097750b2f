//! Data sets of images with (multi-)labels: readers for Fashion-MNIST IDX files, CIFAR-10
//! binary batches, DeepHash-style list files and image folders (decoded natural images), the
//! embedded default set, the split protocol, multi-label mosaics, a data checker and the
//! batcher that turns images into tensors.

mod batch;
mod check;
mod cifar;
mod decode;
mod fashion;
mod folder;
mod idx;
mod labels;
mod limits;
mod listfile;
mod mosaic;
mod source;
mod split;
mod store;

pub use batch::{Augment, PREFETCH, batch_pixels, batch_shape, prefetch_batches, to_tensor};
pub use check::{DataCheckReport, MAX_PROBLEMS, Problem, RoleSummary, check_folder, check_lists};
pub use cifar::{CIFAR10_CLASSES, load_cifar10_dir, parse_cifar10_batch, read_cifar10_batch};
pub use decode::{
    BadImage, ImageGeometry, MAX_DECODE_BYTES, MAX_SIDE, decode_bytes, decode_file, decode_grey,
    parallel_map, transform,
};
pub use fashion::{DataSource, FASHION_CLASSES, load_fashion_mnist, resolve_fashion_source};
pub use folder::{FolderScan, IMAGE_EXTENSIONS, is_image_file, load_folder, scan_folder};
pub use idx::{IdxArray, MAX_IDX_BYTES, parse_idx};
pub use labels::LabelSet;
pub use limits::ReadLimits;
pub use listfile::{
    ImageList, LIST_FILES, ListEntry, ListPreset, ListSet, MAX_IN_MEMORY_BYTES, NaturalData,
    load_lists, parse_list, read_list,
};
pub use mosaic::make_mosaics;
pub use source::{DataRequest, DatasetKind, LoadedData, load_data};
pub use split::{Split, SplitConfig, TrainSize};
pub use store::{DiskPixels, Pixels, decode_images};

use std::borrow::Cow;

use crate::{Error, Result};

/// A set of equally sized images with their labels, stored compactly as bytes.
///
/// Pixels are laid out image by image in channel-height-width order; a pixel value `v`
/// stands for the intensity `v / 255` in `[0, 1]`. Natural images may be stored with a
/// *frame*: each stored image is `frame` pixels taller and wider than the `height x width`
/// image the network sees, which is its centre; training crops take random windows of it
/// (the reference code's resize-S, random-crop-C transform).
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// Human-readable name, recorded in reports (e.g. `fashion-mnist`).
    pub name: String,
    /// Where the images came from (a directory, or `embedded`).
    pub origin: String,
    /// Channels per image (1 for grey, 3 for RGB).
    pub channels: usize,
    /// Image height in pixels (as the network sees it).
    pub height: usize,
    /// Image width in pixels (as the network sees it).
    pub width: usize,
    /// The stored images, `len * channels * (height + frame) * (width + frame)` bytes, in
    /// memory or in an image cache file.
    pub pixels: Pixels,
    /// Extra stored pixels along each axis around the centre `height x width` image.
    frame: usize,
    /// One label set per image.
    pub labels: Vec<LabelSet>,
    /// Names of the classes, indexed by class number.
    pub class_names: Vec<String>,
}

impl ImageSet {
    /// Builds a set, checking that pixel and label counts agree.
    pub fn new(
        name: impl Into<String>,
        origin: impl Into<String>,
        [channels, height, width]: [usize; 3],
        pixels: Vec<u8>,
        labels: Vec<LabelSet>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        Self::with_pixels(
            name,
            origin,
            [channels, height, width],
            Pixels::Memory(pixels),
            labels,
            class_names,
        )
    }

    /// [`ImageSet::new`] with pixels in memory or on disk.
    pub fn with_pixels(
        name: impl Into<String>,
        origin: impl Into<String>,
        shape: [usize; 3],
        pixels: Pixels,
        labels: Vec<LabelSet>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        Self::framed(name, origin, shape, 0, pixels, labels, class_names)
    }

    /// [`ImageSet::with_pixels`] for images stored `frame` pixels larger along each axis than
    /// the `height x width` images the network sees (their centres).
    pub fn framed(
        name: impl Into<String>,
        origin: impl Into<String>,
        [channels, height, width]: [usize; 3],
        frame: usize,
        pixels: Pixels,
        labels: Vec<LabelSet>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let name = name.into();
        let (sh, sw) = (height + frame, width + frame);
        let per_image = channels * height * width;
        if per_image == 0 || pixels.len() != labels.len() * channels * sh * sw {
            return Err(Error::InvalidArgument(format!(
                "{name}: {} pixel bytes do not hold {} images of {channels}x{sh}x{sw}",
                pixels.len(),
                labels.len()
            )));
        }
        if class_names.len() > LabelSet::MAX_CLASSES {
            return Err(Error::InvalidArgument(format!(
                "{name}: {} classes, at most {} are supported",
                class_names.len(),
                LabelSet::MAX_CLASSES
            )));
        }
        if let Some(bad) = labels
            .iter()
            .find(|l| l.max_class() >= Some(class_names.len()))
        {
            return Err(Error::InvalidArgument(format!(
                "{name}: label {bad:?} names a class beyond the {} known",
                class_names.len()
            )));
        }
        Ok(Self {
            name,
            origin: origin.into(),
            channels,
            height,
            width,
            pixels,
            frame,
            labels,
            class_names,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Bytes per image (as the network sees it).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Extra stored pixels along each axis around each image (0 for most sets).
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// Height and width of each stored image: the image plus its frame.
    pub fn stored_size(&self) -> [usize; 2] {
        [self.height + self.frame, self.width + self.frame]
    }

    /// Bytes per stored image.
    pub fn stored_len(&self) -> usize {
        let [h, w] = self.stored_size();
        self.channels * h * w
    }

    /// The bytes of image `i` as the network sees it: the centre of the stored image (read
    /// from the cache file when the set is on disk).
    pub fn image(&self, i: usize) -> Cow<'_, [u8]> {
        let stored = self.stored_image(i);
        if self.frame == 0 {
            return stored;
        }
        let [sh, sw] = self.stored_size();
        let (h, w) = (self.height, self.width);
        let o = self.frame / 2;
        let mut out = Vec::with_capacity(self.image_len());
        for plane in stored.chunks_exact(sh * sw) {
            for y in o..o + h {
                out.extend_from_slice(&plane[y * sw + o..y * sw + o + w]);
            }
        }
        Cow::Owned(out)
    }

    /// The stored bytes of image `i`, frame included: `channels x (height + frame) x (width +
    /// frame)`.
    pub fn stored_image(&self, i: usize) -> Cow<'_, [u8]> {
        let n = self.stored_len();
        self.pixels.range(i * n, n)
    }

    /// The images at `indices` as pixels in `[0, 1]`, back to back (channel-major each).
    pub fn pixels_f32(&self, indices: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            out.extend(self.image(i).iter().map(|&v| v as f32 / 255.0));
        }
        out
    }

    /// Layout of one image.
    pub fn shape(&self) -> crate::filters::ImageShape {
        crate::filters::ImageShape {
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// Whether any image carries more than one label.
    pub fn is_multi_label(&self) -> bool {
        self.labels.iter().any(|l| l.count() > 1)
    }

    /// A new set holding the images at `indices`, in that order (in memory, frames kept).
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.stored_len());
        for &i in indices {
            pixels.extend_from_slice(&self.stored_image(i));
        }
        ImageSet {
            name: self.name.clone(),
            origin: self.origin.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels: Pixels::Memory(pixels),
            frame: self.frame,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        }
    }

    /// A fingerprint of the set ([`fingerprint`] of its size, labels and each stored image's
    /// first and last 32 bytes): cheap, and different when images are added, removed,
    /// reordered or relabelled.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(24 + self.len() * (16 + 64));
        bytes.extend_from_slice(&(self.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&(self.image_len() as u64).to_le_bytes());
        if self.frame > 0 {
            bytes.extend_from_slice(&(self.frame as u64).to_le_bytes());
        }
        let n = self.stored_len();
        let k = n.min(32);
        for (i, label) in self.labels.iter().enumerate() {
            bytes.extend_from_slice(&label.0.to_le_bytes());
            bytes.extend_from_slice(&self.pixels.range(i * n, k));
            bytes.extend_from_slice(&self.pixels.range((i + 1) * n - k, k));
        }
        fingerprint(bytes)
    }

    /// Concatenates `other` after `self` (in memory); both must have the same image shape and
    /// classes.
    pub fn concat(mut self, other: &ImageSet) -> Result<ImageSet> {
        if [self.channels, self.height, self.width, self.frame]
            != [other.channels, other.height, other.width, other.frame]
            || self.class_names != other.class_names
        {
            return Err(Error::InvalidArgument(format!(
                "cannot join {} ({}x{}x{}) and {} ({}x{}x{})",
                self.name,
                self.channels,
                self.height,
                self.width,
                other.name,
                other.channels,
                other.height,
                other.width
            )));
        }
        let (a, b) = (self.pixels.len(), other.pixels.len());
        let mut pixels = self.pixels.range(0, a).into_owned();
        pixels.extend_from_slice(&other.pixels.range(0, b));
        self.pixels = Pixels::Memory(pixels);
        self.labels.extend_from_slice(&other.labels);
        Ok(self)
    }
}

/// FNV-1a, 64 bits, as 16 hex digits: a stable fingerprint of weights, images or settings.
pub fn fingerprint(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
