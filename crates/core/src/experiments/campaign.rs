//! The one campaign loop: an [`AttackSpec`] run over a set of images batch by batch, with each
//! image's clean and adversarial codes, success on the attack's own criterion and perturbation
//! norms. `attack`, detection, the robustness table and the white-box study all craft through it.

use burn::prelude::*;

use super::spec::{AttackKind, AttackSpec};
use crate::attacks::{
    Objective, SampleStats, Target, adaptive_attack, cw_untargeted, pgd, sample_stats,
};
use crate::filters::ImageShape;
use crate::host::read_floats;
use crate::model::{HashNet, sign_codes};
use crate::retrieval::{PackedCodes, hamming};
use crate::{Error, Result};

/// What a campaign produced, one entry per image in input order.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The adversarial images, same layout as the input pixels.
    pub adversarial: Vec<f32>,
    /// Binary codes of the clean images.
    pub clean_codes: PackedCodes,
    /// Binary codes of the adversarial images.
    pub adv_codes: PackedCodes,
    /// Whether the attack succeeded: untargeted, Hamming(h(x'), h(x)) > K/2; targeted, h(x')
    /// closer to the anchor than to h(x); CW, as CW's own search judged it.
    pub success: Vec<bool>,
    /// Perturbation norms and code flips.
    pub stats: Vec<SampleStats>,
    /// The white-box attacker's eq. 13 terms (L1, L2, L3) per image; empty for other attacks.
    pub terms: Vec<[f32; 4]>,
}

impl Campaign {
    /// Share of successful attacks.
    pub fn success_rate(&self) -> f64 {
        self.success.iter().filter(|&&s| s).count() as f64 / self.success.len().max(1) as f64
    }

    /// Mean Hamming distance of the adversarial codes to the clean ones.
    pub fn mean_hamming_to_original(&self) -> f64 {
        let n = self.clean_codes.len().max(1) as f64;
        (0..self.clean_codes.len())
            .map(|i| hamming(self.clean_codes.code(i), self.adv_codes.code(i)) as f64)
            .sum::<f64>()
            / n
    }
}

/// The images a campaign attacks: pixels in `[0, 1]`, `shape.len()` values per image.
#[derive(Clone, Copy, Debug)]
pub struct Images<'a> {
    /// Row-major pixels of every image.
    pub pixels: &'a [f32],
    /// Layout of one image.
    pub shape: ImageShape,
}

impl Images<'_> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.shape.len().max(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images `start..end` as a batch tensor on `device`.
    pub fn batch(&self, start: usize, end: usize, device: &Device) -> Tensor<4> {
        let (s, per) = (self.shape, self.shape.len());
        Tensor::<4>::from_data(
            TensorData::new(
                self.pixels[start * per..end * per].to_vec(),
                [end - start, s.channels, s.height, s.width],
            ),
            device,
        )
    }

    /// Binary codes of every image under `model`, `batch_size` images per forward pass.
    pub fn codes(
        &self,
        model: &HashNet,
        batch_size: usize,
        device: &Device,
    ) -> Result<PackedCodes> {
        let mut codes = Vec::with_capacity(self.len() * model.bits());
        for start in (0..self.len()).step_by(batch_size.max(1)) {
            let end = (start + batch_size.max(1)).min(self.len());
            codes.extend(read_floats(
                model.forward(self.batch(start, end, device)),
                "codes",
            )?);
        }
        Ok(PackedCodes::from_signs(model.bits(), &codes))
    }
}

/// Runs `spec` on `images` in batches of `batch_size`; `targets` (one per image) are required
/// by targeted attacks. Batch `b` draws its random start from `seed + b` (restart `r > 0` from a
/// seed of its own). `on_step` is called after every iteration of every batch
/// ([`AttackSpec::total_steps`] per batch).
#[allow(clippy::too_many_arguments)]
pub fn run_campaign(
    model: &HashNet,
    images: Images<'_>,
    spec: &AttackSpec,
    targets: Option<&[Target]>,
    batch_size: usize,
    seed: u64,
    device: &Device,
    mut on_step: impl FnMut(),
) -> Result<Campaign> {
    spec.validate()?;
    let n = images.len();
    if batch_size == 0 {
        return Err(Error::InvalidArgument(
            "--batch-size must be at least 1".into(),
        ));
    }
    if images.shape.is_empty() || !images.pixels.len().is_multiple_of(images.shape.len()) {
        return Err(Error::InvalidArgument(format!(
            "{} pixel values are not whole {:?} images",
            images.pixels.len(),
            images.shape
        )));
    }
    let targets = match (spec.kind.needs_goals(), targets) {
        (true, Some(t)) if t.len() == n => Some(t),
        (true, Some(t)) => {
            return Err(Error::InvalidArgument(format!(
                "{} targets for {n} images",
                t.len()
            )));
        }
        (true, None) => {
            return Err(Error::InvalidArgument(format!(
                "{} needs a goal per image (attack_goals)",
                spec.kind
            )));
        }
        (false, _) => None,
    };
    let bits = model.bits();
    let mut out = Campaign {
        adversarial: Vec::with_capacity(images.pixels.len()),
        clean_codes: PackedCodes::new(bits),
        adv_codes: PackedCodes::new(bits),
        success: Vec::with_capacity(n),
        stats: Vec::with_capacity(n),
        terms: Vec::new(),
    };
    for (b, start) in (0..n).step_by(batch_size).enumerate() {
        let end = (start + batch_size).min(n);
        let x = images.batch(start, end, device);
        let f_clean = model.forward(x.clone());
        let h_clean = sign_codes(f_clean.clone());
        let clean = PackedCodes::from_signs(bits, &read_floats(f_clean.clone(), "codes")?);
        let anchors = targets.map(|t| &t[start..end]);
        let batch_seed = seed.wrapping_add(b as u64);
        let (adv, cw_ok) = if spec.kind == AttackKind::Adaptive {
            let goals = anchors.unwrap_or_default();
            let targets = anchor_tensor(goals, bits, device);
            let looks = if spec.adaptive.lambda4 != 0.0 {
                Some(look_tensor(goals, device)?)
            } else {
                None
            };
            let (adv, t) = adaptive_attack(
                model,
                x.clone(),
                targets,
                looks,
                &spec.adaptive,
                &spec.budget(),
                spec.rule,
                batch_seed,
                |_| on_step(),
            )?;
            for i in 0..end - start {
                out.terms.push([t.l1[i], t.l2[i], t.l3[i], t.l4[i]]);
            }
            (adv, None)
        } else {
            craft_batch(
                model,
                x.clone(),
                h_clean,
                &clean,
                anchors,
                spec,
                batch_seed,
                &mut on_step,
            )?
        };
        let f_adv = model.forward(adv.clone());
        let advc = PackedCodes::from_signs(bits, &read_floats(f_adv.clone(), "codes")?);
        out.stats
            .extend(sample_stats(x, adv.clone(), f_clean, f_adv)?);
        for i in 0..end - start {
            let flips = hamming(clean.code(i), advc.code(i));
            out.success.push(match (&cw_ok, anchors) {
                (Some(ok), _) => ok[i],
                (None, Some(a)) if spec.kind.is_targeted() => {
                    judge_targeted(&advc, i, &a[i].anchor, flips)
                }
                _ => flips as usize > bits / 2,
            });
        }
        out.clean_codes.extend(&clean);
        out.adv_codes.extend(&advc);
        out.adversarial
            .extend(read_floats(adv, "adversarial images")?);
    }
    Ok(out)
}

impl AttackSpec {
    /// What the PGD family minimises for this attack: UMCD's untargeted form, HAG's masked loss,
    /// DHTA's pull towards `anchors` (`[batch, bits]`, ±1), or the untargeted form away from the
    /// label codes the centre / mainstay attacks pass as `anchors`. `original` is the clean
    /// batch's binary codes. CW and the white-box attacker have their own losses and are refused.
    pub fn objective(&self, original: Tensor<2>, anchors: Option<Tensor<2>>) -> Result<Objective> {
        match (self.kind, anchors) {
            (AttackKind::Pgd, _) => Ok(Objective::Untargeted { original }),
            (AttackKind::Hag, _) => Ok(Objective::Hag {
                original,
                beta: self.hag_beta,
            }),
            (AttackKind::Dhta, Some(anchors)) => Ok(Objective::Targeted { anchors }),
            (AttackKind::Centre | AttackKind::Mainstay, Some(codes)) => {
                Ok(Objective::Untargeted { original: codes })
            }
            (kind @ (AttackKind::Dhta | AttackKind::Centre | AttackKind::Mainstay), None) => Err(
                Error::InvalidArgument(format!("{kind} needs a code per image (attack_goals)")),
            ),
            (kind @ (AttackKind::Cw | AttackKind::Adaptive), _) => Err(Error::InvalidArgument(
                format!("{kind} is not a PGD-family attack: it has a loss of its own"),
            )),
        }
    }
}

/// The anchors of `targets` as a `[n, bits]` tensor.
fn anchor_tensor(targets: &[Target], bits: usize, device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = targets
        .iter()
        .flat_map(|t| t.anchor.iter().copied())
        .collect();
    Tensor::<2>::from_data(TensorData::new(flat, [targets.len(), bits]), device)
}

/// The targets' looks as one `[batch, looks, len]` tensor; refused unless every target has as
/// many looks as the others, all of one length.
fn look_tensor(targets: &[Target], device: &Device) -> Result<Tensor<3>> {
    let first = targets.first().map(|t| &t.looks);
    let (m, len) = first.map_or((0, 0), |l| (l.len(), l.first().map_or(0, Vec::len)));
    let uneven = |t: &Target| t.looks.len() != m || t.looks.iter().any(|l| l.len() != len);
    if m == 0 || len == 0 || targets.iter().any(uneven) {
        return Err(Error::InvalidArgument(
            "the white-box attacker's C4 term (λ4) needs the same number of looks (thumbnails) \
             per target"
                .into(),
        ));
    }
    let flat: Vec<f32> = targets
        .iter()
        .flat_map(|t| t.looks.iter().flatten().copied())
        .collect();
    Ok(Tensor::<3>::from_data(
        TensorData::new(flat, [targets.len(), m, len]),
        device,
    ))
}

/// A targeted example succeeds when its code is closer to the anchor than to the original.
fn judge_targeted(adv: &PackedCodes, i: usize, anchor: &[f32], flips: u32) -> bool {
    let anchor = PackedCodes::from_signs(adv.bits(), anchor);
    hamming(adv.code(i), anchor.code(0)) < flips
}

/// One batch of `spec`: the adversarial images and, for CW, its per-image success.
#[allow(clippy::too_many_arguments)]
fn craft_batch(
    model: &HashNet,
    x: Tensor<4>,
    h_clean: Tensor<2>,
    clean: &PackedCodes,
    targets: Option<&[Target]>,
    spec: &AttackSpec,
    seed: u64,
    on_step: &mut impl FnMut(),
) -> Result<(Tensor<4>, Option<Vec<bool>>)> {
    let device = x.device();
    let bits = model.bits();
    if spec.kind == AttackKind::Cw {
        let (adv, ok) = cw_untargeted(model, x, h_clean, &spec.cw_config(), |_| on_step())?;
        return Ok((adv, Some(ok)));
    }
    let anchors = targets.map(|t| anchor_tensor(t, bits, &device));
    let objective = spec.objective(h_clean, anchors)?;
    let budget = spec.budget();
    let mut best = pgd(
        model,
        x.clone(),
        &objective,
        &budget,
        spec.alpha_schedule,
        seed,
        |_| on_step(),
    )?;
    if spec.restarts > 1 {
        // Keep, per image, the restart that does best on the attack's success measure.
        let score = |adv: &Tensor<4>| -> Result<Vec<i64>> {
            let codes =
                PackedCodes::from_signs(bits, &read_floats(model.forward(adv.clone()), "codes")?);
            Ok((0..codes.len())
                .map(|i| match targets.filter(|_| spec.kind.is_targeted()) {
                    Some(t) => {
                        let a = PackedCodes::from_signs(bits, &t[i].anchor);
                        -(hamming(codes.code(i), a.code(0)) as i64)
                    }
                    None => hamming(codes.code(i), clean.code(i)) as i64,
                })
                .collect())
        };
        let per = x.dims()[1..].iter().product::<usize>();
        let mut best_score = score(&best)?;
        let mut best_pixels = read_floats(best.clone(), "adversarial images")?;
        for r in 1..spec.restarts as u64 {
            let run_seed = seed.wrapping_add(r.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let adv = pgd(
                model,
                x.clone(),
                &objective,
                &budget,
                spec.alpha_schedule,
                run_seed,
                |_| on_step(),
            )?;
            let s = score(&adv)?;
            let pixels = read_floats(adv, "adversarial images")?;
            for (i, (new, old)) in s.iter().zip(best_score.iter_mut()).enumerate() {
                if new > old {
                    *old = *new;
                    best_pixels[i * per..(i + 1) * per]
                        .copy_from_slice(&pixels[i * per..(i + 1) * per]);
                }
            }
        }
        best = Tensor::<4>::from_data(TensorData::new(best_pixels, x.dims()), &device);
    }
    Ok((best, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::tiny_model;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn images(n: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        (0..n * 36).map(|_| rng.random_range(0.0..1.0)).collect()
    }

    const SHAPE: ImageShape = ImageShape {
        channels: 1,
        height: 6,
        width: 6,
    };

    #[test]
    fn batching_does_not_change_the_result_and_budgets_hold() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let pixels = images(5);
        let imgs = Images {
            pixels: &pixels,
            shape: SHAPE,
        };
        let spec = AttackSpec::new(AttackKind::Pgd)
            .with_eps(16.0 / 255.0)
            .with_steps(5);
        let mut steps = 0;
        let one = run_campaign(&model, imgs, &spec, None, 5, 0, &device, || steps += 1).unwrap();
        assert_eq!(steps, 5, "one batch of five steps");
        let two = run_campaign(&model, imgs, &spec, None, 2, 0, &device, || ()).unwrap();
        assert_eq!(one.success, two.success);
        assert_eq!(one.adv_codes, two.adv_codes);
        for (a, b) in one.adversarial.iter().zip(&two.adversarial) {
            assert!((a - b).abs() < 1e-5);
        }
        for (adv, x) in one.adversarial.iter().zip(&pixels) {
            assert!((adv - x).abs() <= spec.eps + 1e-6 && (0.0..=1.0).contains(adv));
        }
        assert_eq!(one.stats.len(), 5);
        for (i, s) in one.stats.iter().enumerate() {
            assert_eq!(
                s.hamming_to_original,
                hamming(one.clean_codes.code(i), one.adv_codes.code(i))
            );
        }
    }

    #[test]
    fn label_code_attacks_push_away_from_the_code_they_are_given() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let pixels = images(4);
        let imgs = Images {
            pixels: &pixels,
            shape: SHAPE,
        };
        let pgd = AttackSpec::new(AttackKind::Pgd).with_eps(0.5).with_steps(4);
        let base = run_campaign(&model, imgs, &pgd, None, 4, 0, &device, || ()).unwrap();
        // Given each image's own code, CgAT's attack is UMCD's untargeted PGD.
        let own: Vec<Target> = (0..4)
            .map(|i| Target {
                label: 0,
                anchor: base.clean_codes.signs(i),
                looks: Vec::new(),
            })
            .collect();
        for kind in [AttackKind::Centre, AttackKind::Mainstay] {
            let spec = AttackSpec { kind, ..pgd };
            let same = run_campaign(&model, imgs, &spec, Some(&own), 4, 0, &device, || ()).unwrap();
            assert_eq!(same.adversarial, base.adversarial, "{kind}");
            assert_eq!(same.success, base.success, "{kind}");
            assert!(run_campaign(&model, imgs, &spec, None, 4, 0, &device, || ()).is_err());
        }
        // Given the opposite codes, one signed step goes exactly the other way (where the
        // pixel stays inside [0, 1]).
        let opposite: Vec<Target> = own
            .iter()
            .map(|t| Target {
                label: 0,
                anchor: t.anchor.iter().map(|v| -v).collect(),
                looks: Vec::new(),
            })
            .collect();
        let one = AttackSpec {
            step: 0.01,
            ..pgd.with_steps(1)
        };
        let ahead = run_campaign(&model, imgs, &one, None, 4, 0, &device, || ()).unwrap();
        let spec = AttackSpec {
            kind: AttackKind::Centre,
            ..one
        };
        let back =
            run_campaign(&model, imgs, &spec, Some(&opposite), 4, 0, &device, || ()).unwrap();
        let mut moved = 0;
        for ((x, a), b) in pixels.iter().zip(&ahead.adversarial).zip(&back.adversarial) {
            if (0.02..0.98).contains(x) {
                assert!(((a - x) + (b - x)).abs() < 1e-6, "{x}: {a} vs {b}");
                moved += usize::from((a - x).abs() > 1e-3);
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn targeted_campaigns_need_targets_and_restarts_never_do_worse() {
        let device = Device::flex();
        let model = tiny_model(&device);
        let pixels = images(4);
        let imgs = Images {
            pixels: &pixels,
            shape: SHAPE,
        };
        let dhta = AttackSpec::new(AttackKind::Dhta).with_steps(3);
        assert!(run_campaign(&model, imgs, &dhta, None, 4, 0, &device, || ()).is_err());
        let anchor = vec![1.0; model.bits()];
        let targets: Vec<Target> = (0..4)
            .map(|_| Target {
                label: 1,
                anchor: anchor.clone(),
                looks: Vec::new(),
            })
            .collect();
        let got = run_campaign(&model, imgs, &dhta, Some(&targets), 4, 0, &device, || ()).unwrap();
        let a = PackedCodes::from_signs(model.bits(), &anchor);
        for i in 0..4 {
            let flips = hamming(got.clean_codes.code(i), got.adv_codes.code(i));
            assert_eq!(
                got.success[i],
                hamming(got.adv_codes.code(i), a.code(0)) < flips
            );
        }
        // Restarts keep each image's best run: never fewer flips than the first run alone.
        let single = AttackSpec {
            random_start: true,
            ..AttackSpec::new(AttackKind::Pgd).with_steps(3)
        };
        let multi = AttackSpec {
            restarts: 3,
            ..single
        };
        let mut steps = 0;
        let first = run_campaign(&model, imgs, &single, None, 4, 9, &device, || ()).unwrap();
        let best = run_campaign(&model, imgs, &multi, None, 4, 9, &device, || steps += 1).unwrap();
        assert_eq!(steps, 9);
        for (f, b) in first.stats.iter().zip(&best.stats) {
            assert!(b.hamming_to_original >= f.hamming_to_original);
        }
    }
}
