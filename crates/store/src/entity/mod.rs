//! sea-orm entities, one module per table. Column meaning is documented in the migrations and in
//! the catalog types they load into.

pub mod admin_token;
pub mod endpoint;
pub mod gateway_key;
pub mod global_model;
pub mod model_alias;
pub mod provider;
pub mod provider_key;
pub mod provider_key_state;
pub mod provider_model;
pub mod request_attempt;
pub mod system_setting;
pub mod usage;
pub mod user;
