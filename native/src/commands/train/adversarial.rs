//! `hashguard adv-train` (FreeAT, CgAT, SAAT into a run directory, same format as `train`) and
//! the fine-tuning `reproduce --table 3` asks for: train when absent, resume when interrupted,
//! reuse when done.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Args;
use hashguard_core::adv_train::{AdvTerm, AdvTraining, TargetSource};
use hashguard_core::experiments::robustness::RowTraining;
use hashguard_core::run::RunDir;

use super::{TrainArgs, train_run};
use crate::backend::Selected;

/// Adversarial training methods of `hashguard adv-train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AdvMethod {
    /// FreeAT: each mini-batch replayed --m times, δ updated from the same backward pass.
    Freeat,
    /// PGD-AT (Madry et al.): PGD away from the CSQ hash centres, trained on those images
    /// alone (the reference row; CSQ runs).
    Pgd,
    /// CgAT: PGD away from centre codes, loss + −mean(f(x_adv) ⊙ c).
    Cgat,
    /// SAAT: PGD away from DMFL mainstay codes, loss + λ·alignment + μ·quantisation.
    Saat,
}

/// Flags of `hashguard adv-train`: those of `train`, plus the method and its inner PGD.
#[derive(Args, Debug)]
pub struct AdvTrainArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// Adversarial training method.
    #[arg(long, value_enum)]
    method: AdvMethod,
    /// FreeAT: replays m of each mini-batch. Without --epochs, FreeAT runs ⌈30/m⌉ epochs so
    /// that its cost matches 30 epochs of standard training (Shafahi et al.).
    #[arg(value_parser = crate::commands::positive::<usize>, long = "m", default_value_t = 8)]
    replays: usize,
    /// L∞ radius of the inner PGD, and of FreeAT's δ (pixel units).
    #[arg(long, default_value = "8/255", value_parser = crate::commands::pixel_budget)]
    eps: f32,
    /// Step of the inner PGD.
    #[arg(long, default_value = "2/255", value_parser = crate::commands::pixel_budget)]
    step: f32,
    /// Iterations of the inner PGD.
    #[arg(value_parser = crate::commands::positive::<usize>, long, default_value_t = 7)]
    inner_steps: usize,
    /// SAAT: weight λ of the mainstay alignment term.
    #[arg(value_parser = crate::commands::non_negative::<f64>, long, default_value_t = 1.0)]
    saat_lambda: f64,
    /// SAAT: weight μ of the quantisation term.
    #[arg(value_parser = crate::commands::non_negative::<f64>, long, default_value_t = 1e-4)]
    saat_mu: f64,
    /// CgAT/SAAT: form of the alignment term: `tanh` (the papers' −mean(tanh(z_adv) ⊙ c)) or
    /// `logit` (BCE of the adversarial logits against the code as {0, 1} targets: bits the
    /// inner attack flipped hard keep a gradient).
    #[arg(long, value_enum, default_value = "tanh")]
    adv_term: TermArg,
    /// CgAT: where the target codes come from: `codes` (the paper's centre codes of the
    /// training codes) or `centres` (the items' CSQ hash centres, fixed; an ablation).
    #[arg(long, value_enum, default_value = "codes")]
    adv_targets: TargetsArg,
}

/// `--adv-targets` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetsArg {
    /// The paper's centre codes of the training codes, refreshed with each batch.
    Codes,
    /// The items' CSQ hash centres.
    Centres,
}

impl From<TargetsArg> for TargetSource {
    fn from(arg: TargetsArg) -> Self {
        match arg {
            TargetsArg::Codes => TargetSource::Codes,
            TargetsArg::Centres => TargetSource::Centres,
        }
    }
}

/// `--adv-term` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TermArg {
    /// The papers' −mean(tanh(z_adv) ⊙ c).
    Tanh,
    /// mean(softplus(−2 z_adv ⊙ c)), the BCE on the logits.
    Logit,
}

impl From<TermArg> for AdvTerm {
    fn from(arg: TermArg) -> Self {
        match arg {
            TermArg::Tanh => AdvTerm::Tanh,
            TermArg::Logit => AdvTerm::Logit,
        }
    }
}

/// Runs `hashguard adv-train`.
pub fn run_adversarial(args: AdvTrainArgs, selected: Selected, more: Vec<Selected>) -> Result<()> {
    let (eps, step, steps) = (args.eps, args.step, args.inner_steps);
    let mut train = args.train;
    let adversarial = match args.method {
        AdvMethod::Freeat => {
            if train.epochs.is_none() && !train.resume {
                train.epochs = Some(30usize.div_ceil(args.replays.max(1)));
            }
            AdvTraining::Free {
                eps,
                replays: args.replays,
            }
        }
        AdvMethod::Pgd => AdvTraining::PgdAt { eps, step, steps },
        AdvMethod::Cgat => AdvTraining::CgAt {
            eps,
            step,
            steps,
            term: AdvTerm::Tanh,
            targets: TargetSource::Codes,
        },
        AdvMethod::Saat => AdvTraining::Saat {
            eps,
            step,
            steps,
            lambda: args.saat_lambda,
            mu: args.saat_mu,
            term: AdvTerm::Tanh,
        },
    };
    let adversarial = match (args.adv_term, args.method) {
        (TermArg::Tanh, _) => adversarial,
        (TermArg::Logit, AdvMethod::Freeat | AdvMethod::Pgd) => {
            bail!(
                "--adv-term is CgAT's and SAAT's: FreeAT and PGD-AT train on the hashing loss alone"
            )
        }
        (term, _) => adversarial.with_term(term.into()),
    };
    let adversarial = match (args.adv_targets, args.method) {
        (TargetsArg::Codes, _) => adversarial,
        (targets, AdvMethod::Cgat) => adversarial.with_targets(targets.into()),
        (TargetsArg::Centres, _) => bail!("--adv-targets centres is CgAT's: use --method cgat"),
    };
    adversarial.validate()?;
    train_run(train, Some(adversarial), selected, more)
}

/// Makes sure `out` holds a finished run of `wanted` (method, epochs, base rate, optimiser,
/// weight decay, seed = `init`'s + the replicate) fine-tuned from `init`, or trained from
/// scratch on its split when `wanted.from_scratch`: trains it when absent, resumes it when
/// interrupted, reuses it when done, and refuses a directory holding a different run.
pub fn ensure_trained(
    init: &Path,
    out: &Path,
    wanted: &RowTraining,
    selected: &Selected,
) -> Result<()> {
    let RowTraining {
        method: adversarial,
        epochs,
        lr,
        optimizer,
        weight_decay,
        replicate,
        from_scratch,
    } = wanted.clone();
    let base = RunDir::open(init)?.read_config()?.train;
    let seed = base.seed + replicate as u64;
    let weight_decay = weight_decay.unwrap_or(base.weight_decay);
    let existing = RunDir::new(out);
    let resume = existing.file("config.json").exists();
    if resume {
        let config = existing.read_config()?;
        let t = &config.train;
        let from = Some(init.display().to_string());
        let (want_init, want_split) = if from_scratch {
            (None, from)
        } else {
            (from, None)
        };
        if t.adversarial.as_ref() != Some(&adversarial)
            || t.epochs != epochs
            || t.init != want_init
            || t.split_from != want_split
            || t.lr != lr
            || t.optimizer.unwrap_or_default() != optimizer.unwrap_or_default()
            || t.weight_decay != weight_decay
            || t.seed != seed
        {
            bail!(
                "{} holds a different run ({:?}, {} epochs, lr {}, {:?}, weight decay {}, seed {}, \
                 init {:?}, split from {:?}) than this table needs ({adversarial:?}, {epochs} \
                 epochs, lr {lr}, {:?}, weight decay {weight_decay}, seed {seed}, {} {}): move it \
                 away or choose another --out",
                out.display(),
                t.adversarial,
                t.epochs,
                t.lr,
                t.optimizer.unwrap_or_default(),
                t.weight_decay,
                t.seed,
                t.init,
                t.split_from,
                optimizer.unwrap_or_default(),
                if from_scratch {
                    "from scratch on the split of"
                } else {
                    "fine-tuned from"
                },
                init.display()
            );
        }
        let done = existing.read_checkpoint()?.map_or(0, |c| c.history.len());
        if done >= epochs && existing.file("model.bpk").exists() {
            eprintln!("{}: already trained, reused", out.display());
            return Ok(());
        }
    }
    let args = TrainArgs {
        out: out.to_path_buf(),
        dataset: None,
        data: None,
        lists: None,
        image_size: None,
        resize: None,
        skip_bad_images: false,
        cache: None,
        query_per_class: None,
        bits: None,
        backbone: None,
        pretrained: None,
        epochs: (!resume).then_some(epochs),
        batch_size: None,
        lr: (!resume).then_some(lr),
        weight_decay: (!resume).then_some(weight_decay),
        optimizer: if resume { None } else { optimizer },
        train_size: None,
        seed: (!resume).then_some(seed),
        loss: None,
        alpha: None,
        lambda: None,
        label_smoothing: None,
        init: (!resume && !from_scratch).then(|| init.to_path_buf()),
        split_from: (!resume && from_scratch).then(|| init.to_path_buf()),
        resume,
    };
    train_run(args, Some(adversarial), selected.clone(), Vec::new())
}
