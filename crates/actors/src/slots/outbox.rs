//! Releases on their way to KeySlots. A lease dropped on an actor thread (an HTTP worker) is
//! not sent at once: its release waits until the thread has run the tasks that are ready now,
//! then goes to its KeySlots shard with every other release made meanwhile, in one message.
//! Under load a worker finishes several requests per round, and each message to another thread
//! may wake it: batching cuts those wake-ups. A slot request flushes its shard's releases
//! first (`flush`), so this thread never asks for a slot while holding back one it freed.
//!
//! Off an actor thread (or while the thread is being torn down) a release is sent at once.

use super::KeySlots;
use super::messages::{ReleaseSlot, ReleaseSlots};
use crate::handle::Handle;
use std::cell::RefCell;

thread_local! {
    /// Per KeySlots shard, the releases not sent yet.
    static PENDING: RefCell<Vec<(Handle<KeySlots>, Vec<ReleaseSlot>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Sends `release` with the others of this round of the thread's tasks.
pub(crate) fn post(slots: &Handle<KeySlots>, release: ReleaseSlot) {
    if actix::Arbiter::try_current().is_none() {
        slots.tell(release);
        return;
    }
    let mut release = Some(release);
    let first_of_round = PENDING
        .try_with(|pending| {
            let mut pending = pending.borrow_mut();
            let index = match pending
                .iter()
                .position(|(shard, _)| shard.addr() == slots.addr())
            {
                Some(index) => index,
                None => {
                    pending.push((slots.clone(), Vec::new()));
                    pending.len() - 1
                }
            };
            let releases = &mut pending[index].1;
            releases.extend(release.take());
            releases.len() == 1
        })
        .unwrap_or(false);
    if let Some(release) = release {
        // The thread's storage is gone (the thread is exiting): send it alone.
        slots.tell(release);
    } else if first_of_round {
        let flusher = Flusher(slots.clone());
        actix::spawn(async move {
            // Behind every task that is ready now: their releases join this one.
            tokio::task::yield_now().await;
            drop(flusher);
        });
    }
}

/// Sends this thread's pending releases for `slots` now.
pub(crate) fn flush(slots: &Handle<KeySlots>) {
    let releases = PENDING
        .try_with(|pending| {
            pending
                .borrow_mut()
                .iter_mut()
                .find(|(shard, _)| shard.addr() == slots.addr())
                .map(|(_, releases)| std::mem::take(releases))
        })
        .ok()
        .flatten()
        .unwrap_or_default();
    if !releases.is_empty() {
        slots.tell(ReleaseSlots(releases));
    }
}

/// Flushes its shard when dropped: after its task yielded once, or when the task is dropped
/// unrun because the thread stops — the releases go out either way.
struct Flusher(Handle<KeySlots>);

impl Drop for Flusher {
    fn drop(&mut self) {
        flush(&self.0);
    }
}
