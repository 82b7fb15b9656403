//! Messages to KeySlots from a worker thread, batched per round of the thread's tasks. Under
//! load a worker finishes and starts several requests per round, and each message to another
//! thread may wake it (a system call on both sides): batching cuts those wake-ups.
//!
//! - Releases: a lease dropped on an actor thread (an HTTP worker) is not sent at once; its
//!   release waits until the thread has run the tasks that are ready now, then goes to its
//!   KeySlots shard with every other release made meanwhile, in one message.
//! - Slot requests that do not wait: likewise gathered per round and shard and sent as one
//!   message, whose answer is handed out to the requesters on this thread. The thread's pending
//!   releases go first, so it never asks for a slot while holding back one it freed.
//!
//! - Releases that nothing waits on (what an attempt on a kept slot taught, slots given back by
//!   the hand-over sweep, see `slots::handover`): they join the next batch, whenever it goes.
//!
//! Off an actor thread (or while the thread is being torn down) a message is sent at once.

use super::KeySlots;
use super::messages::{AcquireSlot, AcquireSlots, ReleaseSlot, ReleaseSlots, SlotResult};
use crate::handle::{Handle, SendError};
use std::cell::RefCell;
use std::thread::LocalKey;
use std::time::Duration;
use tokio::sync::oneshot;

/// A slot request waiting for its batch's answer.
type Asked = (AcquireSlot, oneshot::Sender<Result<SlotResult, SendError>>);

thread_local! {
    /// Per KeySlots shard, the releases not sent yet.
    static RELEASES: RefCell<Vec<(Handle<KeySlots>, Vec<ReleaseSlot>)>> =
        const { RefCell::new(Vec::new()) };
    /// Per KeySlots shard, the releases that go with the next batch.
    static LATER: RefCell<Vec<(Handle<KeySlots>, Vec<ReleaseSlot>)>> =
        const { RefCell::new(Vec::new()) };
    /// Per KeySlots shard, the slot requests not sent yet.
    static ASKED: RefCell<Vec<(Handle<KeySlots>, Vec<Asked>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Sends `release` with the others of this round of the thread's tasks.
pub(crate) fn post(slots: &Handle<KeySlots>, release: ReleaseSlot) {
    if actix::Arbiter::try_current().is_none() {
        slots.tell(release);
        return;
    }
    match queue(&RELEASES, slots, release) {
        // The thread's storage is gone (the thread is exiting): send it alone.
        Err(release) => slots.tell(release),
        Ok(true) => {
            let flusher = Flusher(slots.clone());
            actix::spawn(async move {
                // Behind every task that is ready now: their releases join this one.
                tokio::task::yield_now().await;
                drop(flusher);
            });
        }
        Ok(false) => {}
    }
}

/// Sends `release` with the next batch of this thread's releases for `slots`, whenever that goes
/// (the caller sees to it that one does: see `slots::handover`).
pub(crate) fn post_later(slots: &Handle<KeySlots>, release: ReleaseSlot) {
    if actix::Arbiter::try_current().is_none() {
        slots.tell(release);
        return;
    }
    if let Err(release) = queue(&LATER, slots, release) {
        slots.tell(release);
    }
}

/// Sends this thread's pending releases for `slots` now.
pub(crate) fn flush(slots: &Handle<KeySlots>) {
    let mut releases = take_batch(&LATER, slots);
    releases.append(&mut take_batch(&RELEASES, slots));
    if !releases.is_empty() {
        slots.tell(ReleaseSlots(releases));
    }
}

/// Sends this thread's pending releases for every shard now.
pub(crate) fn flush_all() {
    let shards: Vec<Handle<KeySlots>> = [&LATER, &RELEASES]
        .into_iter()
        .flat_map(|batches| {
            batches
                .try_with(|batches| {
                    batches
                        .borrow()
                        .iter()
                        .filter(|(_, batch)| !batch.is_empty())
                        .map(|(shard, _)| shard.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    for shard in shards {
        flush(&shard);
    }
}

/// Asks `slots` for a slot. A request that does not wait goes with the others of this round of
/// the thread's tasks; one that waits (the bounded queue) goes alone, at once.
pub(crate) async fn acquire(
    slots: &Handle<KeySlots>,
    request: AcquireSlot,
    timeout: Duration,
) -> Result<SlotResult, SendError> {
    if request.wait.is_some() || actix::Arbiter::try_current().is_none() {
        flush(slots);
        return slots.ask(request, timeout).await;
    }
    let (reply, answer) = oneshot::channel();
    match queue(&ASKED, slots, (request, reply)) {
        // The thread's storage is gone (the thread is exiting): ask alone.
        Err((request, _)) => {
            flush(slots);
            return slots.ask(request, timeout).await;
        }
        Ok(true) => {
            let slots = slots.clone();
            actix::spawn(async move {
                // Behind every task that is ready now: their requests join this one.
                tokio::task::yield_now().await;
                send_asked(&slots, timeout).await;
            });
        }
        Ok(false) => {}
    }
    answer.await.unwrap_or(Err(SendError::Closed("KeySlots")))
}

/// Sends the round's slot requests for `slots` (its pending releases first) and hands out the
/// answers. A slot granted to a requester that has gone meanwhile is given straight back.
async fn send_asked(slots: &Handle<KeySlots>, timeout: Duration) {
    let batch = take_batch(&ASKED, slots);
    if batch.is_empty() {
        return;
    }
    flush(slots);
    let (requests, replies): (Vec<AcquireSlot>, Vec<_>) = batch.into_iter().unzip();
    match slots.ask(AcquireSlots(requests), timeout).await {
        Ok(answers) => {
            for (reply, (request, result)) in replies.into_iter().zip(answers) {
                if let Err(Ok(Ok(_))) = reply.send(Ok(result)) {
                    slots.tell(ReleaseSlot::free(
                        request.key_id,
                        request.endpoint_id,
                        request.lease_id,
                    ));
                }
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// This thread's batches of one kind, per KeySlots shard.
type Batches<T> = LocalKey<RefCell<Vec<(Handle<KeySlots>, Vec<T>)>>>;

/// Adds `item` to this round's batch for `slots`: whether it is the batch's first (its sender
/// is to be scheduled), or the item back when the thread's storage is gone.
fn queue<T>(batches: &'static Batches<T>, slots: &Handle<KeySlots>, item: T) -> Result<bool, T> {
    let mut item = Some(item);
    let first = batches
        .try_with(|batches| {
            let mut batches = batches.borrow_mut();
            let batch = batch_of(&mut batches, slots);
            batch.extend(item.take());
            batch.len() == 1
        })
        .unwrap_or(false);
    match item {
        Some(item) => Err(item),
        None => Ok(first),
    }
}

/// Takes this round's batch for `slots` (empty when there is none).
fn take_batch<T>(batches: &'static Batches<T>, slots: &Handle<KeySlots>) -> Vec<T> {
    batches
        .try_with(|batches| std::mem::take(batch_of(&mut batches.borrow_mut(), slots)))
        .unwrap_or_default()
}

/// The entry of `slots` in a per-shard list, added when missing.
fn batch_of<'a, T>(
    pending: &'a mut Vec<(Handle<KeySlots>, Vec<T>)>,
    slots: &Handle<KeySlots>,
) -> &'a mut Vec<T> {
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
    &mut pending[index].1
}

/// Flushes its shard's releases when dropped: after its task yielded once, or when the task is
/// dropped unrun because the thread stops — the releases go out either way.
struct Flusher(Handle<KeySlots>);

impl Drop for Flusher {
    fn drop(&mut self) {
        flush(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoutingConfig;
    use crate::handle::Shards;
    use crate::meter::MeterRegistry;
    use crate::scheduler::SchedulerSet;
    use crate::slots::SlotCounters;
    use crate::slots::messages::Denied;
    use actix::Actor;
    use std::sync::Arc;
    use switchyard_store::state::SharedState;

    const ASK: Duration = Duration::from_secs(5);

    fn slots(registry: &MeterRegistry) -> Handle<KeySlots> {
        let slots = KeySlots::new(
            SharedState::memory(),
            SchedulerSet::new(Shards::new(Vec::new())),
            RoutingConfig::default(),
            None,
            Arc::new(SlotCounters::default()),
        );
        Handle::new(slots.start(), "KeySlots", 0, registry)
    }

    fn request(lease: &str, limit: u32) -> AcquireSlot {
        AcquireSlot {
            key_id: "k".into(),
            endpoint_id: "e".into(),
            lease_id: lease.into(),
            fixed_limit: Some(limit),
            endpoint_limit: None,
            rpm_limit: None,
            cache_warm: true,
            wait: None,
        }
    }

    fn handled(registry: &MeterRegistry, message: &str) -> u64 {
        registry
            .snapshots()
            .into_iter()
            .flat_map(|s| s.messages)
            .find(|m| m.message == message)
            .map_or(0, |m| m.handled)
    }

    #[actix_rt::test]
    async fn slot_requests_of_one_round_go_in_one_message_and_each_gets_its_own_answer() {
        let registry = MeterRegistry::default();
        let slots = slots(&registry);
        // Three requests in one round for a key with room for two.
        let answers = futures_util::future::join_all(
            ["a", "b", "c"].map(|id| acquire(&slots, request(id, 2), ASK)),
        )
        .await;
        let answers: Vec<SlotResult> = answers.into_iter().map(|a| a.expect("answered")).collect();
        assert!(answers[0].is_ok() && answers[1].is_ok(), "{answers:?}");
        assert!(
            matches!(
                answers[2],
                Err(Denied::KeyFull {
                    in_flight: 2,
                    limit: 2
                })
            ),
            "{answers:?}"
        );
        assert_eq!(
            (
                handled(&registry, "AcquireSlots"),
                handled(&registry, "AcquireSlot")
            ),
            (1, 0)
        );
    }

    #[actix_rt::test]
    async fn a_slot_granted_to_a_requester_that_left_is_given_back() {
        let registry = MeterRegistry::default();
        let slots = slots(&registry);
        // Queued in this round, then gone before the batch is answered.
        let mut gone = Box::pin(acquire(&slots, request("gone", 1), ASK));
        assert!(futures_util::poll!(gone.as_mut()).is_pending());
        drop(gone);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            if acquire(&slots, request("next", 1), ASK)
                .await
                .expect("answered")
                .is_ok()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the slot of the requester that left was never given back"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(handled(&registry, "ReleaseSlot"), 1);
    }
}
