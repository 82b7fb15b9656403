//! Catalog entries for the crate's tests.

use std::collections::BTreeMap;
use switchyard_core::ApiFormat;
use switchyard_core::SecretString;
use switchyard_core::catalog::{Endpoint, ProviderKey};

/// An endpoint `e` of provider `p` at `base`, with one extra header.
pub fn endpoint(format: ApiFormat, base: &str) -> Endpoint {
    Endpoint {
        id: "e".into(),
        provider_id: "p".into(),
        api_format: format,
        base_url: base.into(),
        custom_path: None,
        headers: BTreeMap::from([("x-extra".to_owned(), "1".to_owned())]),
        timeout_secs: 300,
        header_timeout_secs: 60,
        first_byte_timeout_secs: 30,
        max_retries: 2,
        max_concurrent: None,
        format_conversion: None,
        keys: vec![],
    }
}

/// Key `k` ("main") of endpoint `e`.
pub fn key() -> ProviderKey {
    ProviderKey {
        name: "main".into(),
        ..ProviderKey::new("k", "e", SecretString::new("sk-secret-value"))
    }
}
