//! Metered actor handles: every message goes in an [`Envelope`] stamped with its send time; the
//! actor unwraps it in a generated handler that records queue wait and handling time. Every
//! request-path `send` carries a timeout, because actix mailboxes do not apply backpressure.

use crate::meter::{ActorMeter, MessageMeter, MeterRegistry};
use actix::dev::ToEnvelope;
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message in transit with its metering.
#[derive(Debug)]
pub struct Envelope<M> {
    /// The message.
    pub msg: M,
    /// When it was sent.
    pub sent_at: Instant,
    /// Counts the message as done when dropped — after its handler, or unhandled when an actor
    /// stops with messages queued — so the depth gauge cannot drift.
    pub done: DoneGuard,
    /// Its type's meter.
    pub message_meter: Arc<MessageMeter>,
}

impl<M: Message> Message for Envelope<M> {
    type Result = M::Result;
}

/// See [`Envelope::done`].
#[derive(Debug)]
pub struct DoneGuard(Arc<ActorMeter>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// Times a handler; records on drop.
#[derive(Debug)]
pub struct HandleTimer {
    started: Instant,
    waited: Duration,
    meter: Arc<MessageMeter>,
}

impl HandleTimer {
    /// Starts timing the handling of `env`.
    pub fn start<M>(env: &Envelope<M>) -> Self {
        let started = Instant::now();
        Self {
            started,
            waited: started.saturating_duration_since(env.sent_at),
            meter: env.message_meter.clone(),
        }
    }
}

impl Drop for HandleTimer {
    fn drop(&mut self) {
        self.meter.record(self.waited, self.started.elapsed());
    }
}

/// Implements `Handler<Envelope<M>>` for each listed message by delegating to `Handler<M>`.
#[macro_export]
macro_rules! metered {
    ($actor:ty: $($msg:ty),+ $(,)?) => {
        $(
            impl ::actix::Handler<$crate::handle::Envelope<$msg>> for $actor {
                type Result = <$actor as ::actix::Handler<$msg>>::Result;

                fn handle(
                    &mut self,
                    env: $crate::handle::Envelope<$msg>,
                    ctx: &mut Self::Context,
                ) -> Self::Result {
                    let _timer = $crate::handle::HandleTimer::start(&env);
                    let $crate::handle::Envelope { msg, done: _done, .. } = env;
                    <$actor as ::actix::Handler<$msg>>::handle(self, msg, ctx)
                }
            }
        )+
    };
}

/// Why a request-path send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The actor did not answer in time (overloaded or stuck).
    #[error("the {0} actor did not answer in time")]
    Timeout(&'static str),
    /// The actor is gone (shutting down).
    #[error("the {0} actor is not running")]
    Closed(&'static str),
}

/// A metered address of one actor shard.
pub struct Handle<A: Actor> {
    addr: Addr<A>,
    meter: Arc<ActorMeter>,
    name: &'static str,
}

impl<A: Actor> Clone for Handle<A> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            meter: self.meter.clone(),
            name: self.name,
        }
    }
}

impl<A: Actor> std::fmt::Debug for Handle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handle({})", self.name)
    }
}

impl<A: Actor> Handle<A> {
    /// Wraps an address and registers its meter.
    pub fn new(addr: Addr<A>, name: &'static str, shard: usize, registry: &MeterRegistry) -> Self {
        let meter = Arc::new(ActorMeter::new(name, shard));
        registry.register(meter.clone());
        Self { addr, meter, name }
    }

    /// The raw address (for tests and wiring only).
    pub fn addr(&self) -> &Addr<A> {
        &self.addr
    }

    fn envelope<M: Message>(&self, msg: M) -> Envelope<M> {
        self.meter.sent();
        Envelope {
            msg,
            sent_at: Instant::now(),
            done: DoneGuard(self.meter.clone()),
            message_meter: self.meter.message(short_type_name::<M>()),
        }
    }

    /// Fire-and-forget (events).
    pub fn tell<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Envelope<M>>,
        A::Context: ToEnvelope<A, Envelope<M>>,
    {
        self.addr.do_send(self.envelope(msg));
    }

    /// Request–response with a timeout.
    pub async fn ask<M>(&self, msg: M, timeout: Duration) -> Result<M::Result, SendError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Envelope<M>>,
        A::Context: ToEnvelope<A, Envelope<M>>,
    {
        match self.addr.send(self.envelope(msg)).timeout(timeout).await {
            Ok(result) => Ok(result),
            Err(MailboxError::Timeout) => Err(SendError::Timeout(self.name)),
            Err(MailboxError::Closed) => Err(SendError::Closed(self.name)),
        }
    }
}

/// `crate::module::Type` → `Type`, computed once per type.
fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Which of `shards` (at least one) owns `key`: FNV-1a, stable across processes and releases
/// (unlike `DefaultHasher`), so several gateways agree.
pub fn shard_index(key: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let shards = shards.max(1);
    ((hash % shards as u64) as usize).min(shards - 1)
}

/// N shards of one actor, chosen by a stable hash of the entity they own. Shared, not copied,
/// when cloned: every request clones the actor system that holds them.
pub struct Shards<A: Actor> {
    shards: Arc<[Handle<A>]>,
}

impl<A: Actor> Clone for Shards<A> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for Shards<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shards({})", self.shards.len())
    }
}

impl<A: Actor> Shards<A> {
    /// From handles (at least one).
    pub fn new(shards: Vec<Handle<A>>) -> Self {
        Self {
            shards: shards.into(),
        }
    }

    /// The shard owning `key` (see [`shard_index`]).
    pub fn pick(&self, key: &str) -> &Handle<A> {
        &self.shards[shard_index(key, self.shards.len())]
    }

    /// Every shard (broadcasts).
    pub fn all(&self) -> &[Handle<A>] {
        &self.shards
    }
}

/// The meter of the per-request Orchestrator actors: they come and go, so they share one meter
/// ("Orchestrator", shard 0) whose depth is the number of requests being orchestrated.
#[derive(Debug, Clone)]
pub struct OrchestratorMeter(Arc<ActorMeter>);

impl OrchestratorMeter {
    /// Registers the meter.
    pub fn new(registry: &MeterRegistry) -> Self {
        let meter = Arc::new(ActorMeter::new("Orchestrator", 0));
        registry.register(meter.clone());
        Self(meter)
    }

    /// A handle onto one orchestrator, metered with the shared meter.
    pub fn handle<A: Actor>(&self, addr: Addr<A>) -> Handle<A> {
        Handle {
            addr,
            meter: self.0.clone(),
            name: "Orchestrator",
        }
    }
}

/// The sending side of an actor's tray: a second mailbox that the actor empties on its own clock
/// (and whenever it is asked to flush) instead of being woken for each message.
///
/// Why: waking an actor on another thread costs a system call and a thread switch per message;
/// for events nobody waits on (records) and that the actor handles in batches anyway, that was
/// the largest single cost of a request. Posting here is a lock-free queue push. Trayed
/// messages are metered like mailbox messages: sent, handled, depth, and their queue wait,
/// which includes the wait for the actor's next round.
pub struct Tray<M> {
    tx: std::sync::mpsc::Sender<Envelope<M>>,
    meter: Arc<ActorMeter>,
}

impl<M> Clone for Tray<M> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            meter: self.meter.clone(),
        }
    }
}

impl<M> std::fmt::Debug for Tray<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tray")
    }
}

impl<M> Tray<M> {
    /// Queues `msg`, metered under the message name `kind`. A tray whose actor has stopped
    /// drops the message (shutdown), like a closed mailbox.
    pub fn post(&self, msg: M, kind: &'static str) {
        self.meter.sent();
        let envelope = Envelope {
            msg,
            sent_at: Instant::now(),
            done: DoneGuard(self.meter.clone()),
            message_meter: self.meter.message(kind),
        };
        let _ = self.tx.send(envelope);
    }
}

/// The actor's side of its [`Tray`].
pub struct TrayInbox<M>(std::sync::mpsc::Receiver<Envelope<M>>);

impl<M> std::fmt::Debug for TrayInbox<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrayInbox")
    }
}

impl<M> TrayInbox<M> {
    /// Hands every queued message to `handle`, timed like a handler; returns how many.
    pub fn drain(&self, mut handle: impl FnMut(M)) -> usize {
        let mut n = 0;
        while let Ok(envelope) = self.0.try_recv() {
            let _timer = HandleTimer::start(&envelope);
            let Envelope {
                msg, done: _done, ..
            } = envelope;
            handle(msg);
            n += 1;
        }
        n
    }
}

/// A tray's two ends. Start the actor with the inbox, then give the [`Tray`] its meter with
/// [`Handle::tray`].
pub fn tray<M>() -> (std::sync::mpsc::Sender<Envelope<M>>, TrayInbox<M>) {
    let (tx, rx) = std::sync::mpsc::channel();
    (tx, TrayInbox(rx))
}

impl<A: Actor> Handle<A> {
    /// The tray of this shard, metered with its mailbox.
    pub fn tray<M>(&self, tx: std::sync::mpsc::Sender<Envelope<M>>) -> Tray<M> {
        Tray {
            tx,
            meter: self.meter.clone(),
        }
    }
}
