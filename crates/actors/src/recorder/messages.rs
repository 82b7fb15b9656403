//! Messages of the Recorder.

use actix::Message;
use switchyard_store::records::{AttemptRow, SpendDelta, UsageRow};

/// A request started: its pending usage row and the rows of candidates skipped at resolution.
#[derive(Debug)]
pub struct RequestOpened {
    /// Status `pending`.
    pub usage: UsageRow,
    /// Skipped candidates.
    pub attempts: Vec<AttemptRow>,
}

/// An attempt (or a skip decided at attempt time) finished.
#[derive(Debug)]
pub struct AttemptFinished(pub AttemptRow);

/// A streamed response was committed to the client (usage row → `streaming`).
#[derive(Debug)]
pub struct RequestStreaming(pub UsageRow);

/// The request is settled: its final usage row, the spend to apply, and the rows of attempts
/// that ended with it (the serving attempt, sent here rather than in a message of its own).
#[derive(Debug)]
pub struct RequestFinished {
    /// Status `completed` or `failed`.
    pub usage: UsageRow,
    /// Attempt rows settled with the request.
    pub attempts: Vec<AttemptRow>,
    /// Spend to add to the key, user and provider.
    pub spend: Option<SpendDelta>,
}

/// Write everything buffered now and answer when it is in the database (tests, shutdown).
#[derive(Debug)]
pub struct Flush;

impl Message for Flush {
    type Result = ();
}

/// What the request path posts to the Recorder's tray (see [`crate::handle::Tray`]), collected
/// every few milliseconds instead of waking the Recorder's thread once per event.
#[derive(Debug)]
pub enum RecordEvent {
    /// See [`RequestOpened`].
    Opened(RequestOpened),
    /// See [`AttemptFinished`].
    Attempt(AttemptFinished),
    /// See [`RequestStreaming`].
    Streaming(RequestStreaming),
    /// See [`RequestFinished`].
    Finished(RequestFinished),
}

impl RecordEvent {
    /// The message name it is metered under.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordEvent::Opened(_) => "RequestOpened",
            RecordEvent::Attempt(_) => "AttemptFinished",
            RecordEvent::Streaming(_) => "RequestStreaming",
            RecordEvent::Finished(_) => "RequestFinished",
        }
    }
}
