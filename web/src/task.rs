//! Work the app awaits without holding a frame: in the browser a task is a future spawned on
//! the page's event loop (WebGPU reads resolve there); natively it runs to completion at once.
//! Either way the app collects the result with [`Task::take`] on a later poll.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

/// A result that arrives later.
pub struct Task<T> {
    slot: Rc<RefCell<Option<T>>>,
}

impl<T: 'static> Task<T> {
    /// Starts `work`: spawned on the browser's event loop on wasm, run at once natively.
    pub fn spawn(work: impl Future<Output = T> + 'static) -> Self {
        let slot = Rc::new(RefCell::new(None));
        #[cfg(target_arch = "wasm32")]
        {
            let filled = slot.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let value = work.await;
                *filled.borrow_mut() = Some(value);
            });
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            *slot.borrow_mut() = Some(pollster::block_on(work));
        }
        Self { slot }
    }

    /// The result, once (`None` while the work is still running).
    pub fn take(&self) -> Option<T> {
        self.slot.borrow_mut().take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_task_is_ready_once() {
        let task = Task::spawn(async { 6 * 7 });
        assert_eq!(task.take(), Some(42));
        assert_eq!(task.take(), None);
    }
}
