//! Recorder handlers and the batch writer.

use super::messages::*;
use super::{HOLD_UNFINISHED, MAX_BUFFERED_ROWS, Recorder};
use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::time::Instant;
use switchyard_store::records::{Batch, Text, UsageRow, write_batch};

impl Recorder {
    fn rows(&self) -> usize {
        self.pending.usage.len() + self.pending.attempts.len() + self.pending.spend.len()
    }

    /// Adds or coalesces a usage row: a later state of the same request replaces the earlier
    /// one while both are still in the buffer. Unfinished rows wait in `held` (see the module
    /// docs); a final row takes its request's held row with it.
    fn push_usage(&mut self, row: UsageRow) {
        if let Some(&i) = self.usage_index.get(&row.request_id) {
            // Same guard as the database: a final state is never replaced.
            if self.pending.usage[i].status.can_become(row.status) {
                self.pending.usage[i] = row;
            }
            return;
        }
        if !row.status.is_final() {
            match self.held.get_mut(&row.request_id) {
                // Keeps the first arrival: the request is written a second after it started.
                Some((held, _)) => {
                    if held.status.can_become(row.status) {
                        *held = row;
                    }
                }
                None => {
                    self.held
                        .insert(row.request_id.clone(), (row, Instant::now()));
                }
            }
            return;
        }
        self.held.remove(&row.request_id);
        self.push_ready(row);
    }

    fn push_ready(&mut self, row: UsageRow) {
        self.usage_index
            .insert(row.request_id.clone(), self.pending.usage.len());
        self.pending.usage.push(row);
    }

    /// Moves held rows older than [`HOLD_UNFINISHED`] (all of them when `everything`) to the
    /// rows to write.
    fn release_held(&mut self, everything: bool) {
        if self.held.is_empty() {
            return;
        }
        let now = Instant::now();
        let due: Vec<Text> = self
            .held
            .iter()
            .filter(|(_, (_, at))| everything || now.duration_since(*at) >= HOLD_UNFINISHED)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some((row, _)) = self.held.remove(&id) {
                self.push_ready(row);
            }
        }
    }

    /// Handles everything posted to the tray since the last round.
    pub(super) fn collect(&mut self, ctx: &mut Context<Self>) {
        let Some(inbox) = self.inbox.take() else {
            return;
        };
        let handled = inbox.drain(|event| match event {
            RecordEvent::Opened(msg) => self.opened(msg),
            RecordEvent::Attempt(AttemptFinished(row)) => self.pending.attempts.push(row),
            RecordEvent::Streaming(msg) => self.push_usage(msg.0),
            RecordEvent::Finished(msg) => self.finished(msg),
        });
        self.inbox = Some(inbox);
        if handled > 0 {
            self.after_push(ctx);
        }
    }

    fn opened(&mut self, msg: RequestOpened) {
        self.push_usage(msg.usage);
        self.pending.attempts.extend(msg.attempts);
    }

    fn finished(&mut self, msg: RequestFinished) {
        self.pending.attempts.extend(msg.attempts);
        self.push_usage(msg.usage);
        self.pending.spend.extend(msg.spend);
    }

    fn after_push(&mut self, ctx: &mut Context<Self>) {
        if self.rows() >= self.batch_rows && self.retry_at.is_none() {
            self.flush(ctx);
        }
        if self.rows() > MAX_BUFFERED_ROWS {
            let excess = self.rows() - MAX_BUFFERED_ROWS;
            let drop_attempts = excess.min(self.pending.attempts.len());
            self.pending.attempts.drain(..drop_attempts);
            self.counters
                .dropped_rows
                .fetch_add(drop_attempts as u64, Ordering::Relaxed);
            tracing::error!(
                dropped = drop_attempts,
                "record buffer full while the database is unreachable; oldest attempt rows dropped"
            );
        }
    }

    /// Starts writing the buffer unless a write is in progress.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing {
            return;
        }
        // Someone waits for everything to be in the database: held rows too.
        self.release_held(!self.flush_waiters.is_empty());
        if self.rows() == 0 {
            for waiter in self.flush_waiters.drain(..) {
                let _ = waiter.send(());
            }
            return;
        }
        self.flushing = true;
        let batch = std::mem::take(&mut self.pending);
        self.usage_index.clear();
        let db = self.db.clone();
        let waiters = std::mem::take(&mut self.flush_waiters);
        ctx.spawn(
            async move {
                let result = write_batch(&db, &batch).await;
                (batch, result)
            }
            .into_actor(self)
            .map(move |(batch, result), act, ctx| {
                act.flushing = false;
                match result {
                    Ok(_) => {
                        act.retry_at = None;
                        act.retry_backoff = std::time::Duration::from_millis(200);
                        act.counters.batches.fetch_add(1, Ordering::Relaxed);
                        act.counters
                            .usage_rows
                            .fetch_add(batch.usage.len() as u64, Ordering::Relaxed);
                        act.counters
                            .attempt_rows
                            .fetch_add(batch.attempts.len() as u64, Ordering::Relaxed);
                        for waiter in waiters {
                            let _ = waiter.send(());
                        }
                        // More arrived meanwhile for someone waiting: go again.
                        if !act.flush_waiters.is_empty() || act.rows() >= act.batch_rows {
                            act.flush(ctx);
                        }
                    }
                    Err(e) => {
                        act.counters.write_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, rows = batch.usage.len() + batch.attempts.len(), "cannot write records; keeping them for the next try");
                        act.requeue(batch);
                        act.flush_waiters.extend(waiters);
                        act.retry_at = Some(std::time::Instant::now() + act.retry_backoff);
                        act.retry_backoff = (act.retry_backoff * 2).min(std::time::Duration::from_secs(10));
                    }
                }
            }),
        );
    }

    /// Puts a failed batch back in front of what arrived meanwhile.
    fn requeue(&mut self, mut failed: Batch) {
        let newer = std::mem::take(&mut self.pending);
        self.usage_index.clear();
        let usage = std::mem::take(&mut failed.usage);
        self.pending.attempts = failed.attempts;
        self.pending.spend = failed.spend;
        for row in usage {
            self.push_usage(row);
        }
        self.pending.attempts.extend(newer.attempts);
        self.pending.spend.extend(newer.spend);
        for row in newer.usage {
            self.push_usage(row);
        }
    }
}

impl Handler<Flush> for Recorder {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Flush, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flush_waiters.push(tx);
        self.collect(ctx);
        self.flush(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

crate::metered!(Recorder: Flush);
