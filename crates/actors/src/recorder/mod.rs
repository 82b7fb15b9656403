//! The Recorder: owns attempt and usage records not yet in the database and writes them in
//! batches, off the request path. The request path's events (a request opened, streaming or
//! finished, an attempt finished) arrive through its tray; its mailbox takes `Flush`.
//!
//! Invariants: one usage row per request, whose final status is written once (the store's
//! guarded upsert refuses a second final state); a request opened and finished within one batch
//! is written as one row. If the database is down, rows wait in a bounded buffer and are
//! written when it returns; past the bound the oldest are dropped with an error log.
//!
//! The request path posts to the Recorder's tray ([`RecordMail`]), which the Recorder empties
//! every [`COLLECT_EVERY`]: posting never wakes its thread. A request's `pending` or `streaming`
//! row is held back for [`HOLD_UNFINISHED`] before it is written: most requests finish sooner,
//! and then only their final row reaches the database (one write per request instead of two).
//! Final rows, attempt rows and spend are never held; `Flush` writes everything.

mod handlers;
pub mod messages;

use foldhash::HashMap;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use switchyard_store::Database;
use switchyard_store::records::{Batch, Text, UsageRow};

use crate::handle::{Tray, TrayInbox};
use messages::RecordEvent;

/// Rows kept while the database is unreachable before the oldest are dropped.
const MAX_BUFFERED_ROWS: usize = 200_000;

/// How often the Recorder empties its tray.
pub const COLLECT_EVERY: Duration = Duration::from_millis(5);

/// How long a request's unfinished (`pending`, `streaming`) row waits for the final one before
/// it is written anyway, so that long requests show up while they run.
pub const HOLD_UNFINISHED: Duration = Duration::from_secs(1);

/// The request path's way to the Recorder shards: one tray per shard, picked by request id.
#[derive(Debug, Clone)]
pub struct RecordMail(Arc<Vec<Tray<RecordEvent>>>);

impl RecordMail {
    /// From one tray per shard, in shard order.
    pub fn new(trays: Vec<Tray<RecordEvent>>) -> Self {
        Self(Arc::new(trays))
    }

    /// The tray of the shard owning `request_id` (the same shard `Shards::pick` chooses).
    pub fn pick(&self, request_id: &str) -> &Tray<RecordEvent> {
        &self.0[crate::handle::shard_index(request_id, self.0.len())]
    }
}

/// Counters for the status endpoint and `/metrics`.
#[derive(Debug, Default, Serialize)]
pub struct RecorderCounters {
    /// Batches written.
    pub batches: AtomicU64,
    /// Usage rows written.
    pub usage_rows: AtomicU64,
    /// Attempt rows written.
    pub attempt_rows: AtomicU64,
    /// Failed batch writes (retried).
    pub write_failures: AtomicU64,
    /// Rows dropped because the buffer was full.
    pub dropped_rows: AtomicU64,
}

/// One Recorder shard.
#[derive(Debug)]
pub struct Recorder {
    db: Database,
    pending: Batch,
    /// request id → index of its usage row in `pending.usage`, to coalesce.
    usage_index: HashMap<Text, usize>,
    flushing: bool,
    batch_rows: usize,
    flush_every: Duration,
    counters: Arc<RecorderCounters>,
    /// Callers of `Flush` waiting for the buffer to reach the database.
    flush_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// After a failed write, no timed flush before this instant (doubling back-off), so a
    /// database outage costs one warning per back-off step, not one per tick.
    retry_at: Option<std::time::Instant>,
    /// Current back-off.
    retry_backoff: Duration,
    /// Events posted by the request path.
    inbox: Option<TrayInbox<RecordEvent>>,
    /// Unfinished usage rows not yet released to `pending`, with their arrival.
    held: HashMap<Text, (UsageRow, std::time::Instant)>,
}

impl Recorder {
    /// A shard writing to `db`.
    pub fn new(
        db: Database,
        batch_rows: usize,
        flush_every: Duration,
        counters: Arc<RecorderCounters>,
    ) -> Self {
        Self {
            db,
            pending: Batch::default(),
            usage_index: HashMap::default(),
            flushing: false,
            batch_rows: batch_rows.max(1),
            flush_every,
            counters,
            flush_waiters: Vec::new(),
            retry_at: None,
            retry_backoff: Duration::from_millis(200),
            inbox: None,
            held: HashMap::default(),
        }
    }

    /// Also collects what is posted to `inbox`'s tray.
    pub fn with_inbox(mut self, inbox: TrayInbox<RecordEvent>) -> Self {
        self.inbox = Some(inbox);
        self
    }
}

impl actix::Actor for Recorder {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        use actix::AsyncContext;
        if self.inbox.is_some() {
            ctx.run_interval(COLLECT_EVERY, |act, ctx| act.collect(ctx));
        }
        ctx.run_interval(self.flush_every, |act, ctx| {
            if act
                .retry_at
                .is_none_or(|at| at <= std::time::Instant::now())
            {
                act.flush(ctx);
            }
        });
    }
}
