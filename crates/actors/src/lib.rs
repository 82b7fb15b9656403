//! The actors of Switchyard and the request path they implement.
//!
//! | actor | owns |
//! |---|---|
//! | `Scheduler` | the catalog snapshot, circuit states, cool-downs, cache affinity |
//! | `HealthMonitor` | circuit breakers per provider key |
//! | `KeySlots` | concurrency leases, learned limits, RPM, cool-downs, the wait queue |
//! | `Recorder` | attempt and usage records not yet written |
//! | `Orchestrator` | one request (started per request on the HTTP worker's Arbiter) |
//!
//! No lock guards routing state: each actor owns its state and is reached by messages through a
//! metered [`handle::Handle`]. Pure decisions live in `switchyard-core`.

pub mod config;
pub mod handle;
pub mod health;
pub mod latency;
pub mod ledger;
pub mod meter;
pub mod orchestrator;
pub mod recorder;
pub mod scheduler;
pub mod slots;
pub mod system;

pub use config::RoutingConfig;
pub use system::{ActorSystem, Refusal};
