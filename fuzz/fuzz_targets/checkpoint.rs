//! Checkpoints (`checkpoint.bin`: history, model, optimiser state, loss state): any bytes are
//! refused with an error or restored into a trainer of the tiny configuration.

#![no_main]

use std::cell::RefCell;
use std::path::Path;

use burn::prelude::*;
use hashguard_core::adv_train::Trainer;
use hashguard_core::run::Checkpoint;
use libfuzzer_sys::fuzz_target;

mod common;

thread_local! {
    static TRAINER: RefCell<Trainer> = RefCell::new(
        Trainer::new(common::tiny_train(), common::tiny_centres(), &Device::flex())
            .expect("the tiny configuration is valid"),
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(checkpoint) = Checkpoint::from_bytes(data, Path::new("checkpoint.bin")) else {
        return;
    };
    let epochs = checkpoint.history.len();
    TRAINER.with_borrow_mut(|trainer| {
        let restored = trainer.restore(
            checkpoint.model,
            checkpoint.optim,
            checkpoint.history,
            checkpoint.loss_state,
        );
        if restored.is_ok() {
            assert_eq!(trainer.epochs_done(), epochs);
        }
    });
});
