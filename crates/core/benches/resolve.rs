//! Cost of candidate resolution ([`resolve`]) on a large catalog: 100 providers × 10 keys, one
//! OPENAI endpoint each, one global model that every provider serves, some providers with model
//! mappings (ties that must be hashed, and format-restricted ones that must be filtered out).
//!
//! Every request runs `resolve` once, on the request path, so its cost is part of the gateway's
//! added latency. Four cases: each priority mode (`provider`, `global_key`) without an affinity
//! entry (a new client) and with one that hits (a returning client whose key is not the first
//! candidate, so the promotion really moves it). The view is [`AllHealthy`]: every key is
//! usable, so all 1,000 candidates are built, ranked and sorted — the worst case for ordering.
//!
//! Run: `cargo bench -p switchyard-core --bench resolve` (add `-- --quick` for a smoke run).
#![expect(
    clippy::expect_used,
    reason = "a benchmark whose set-up is wrong must stop loudly rather than measure nonsense"
)]

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use switchyard_core::catalog::{
    BillingType, Catalog, CatalogParts, Endpoint, GatewayKey, GlobalModel, Provider, ProviderKey,
    ProviderModel, User,
};
use switchyard_core::mapping::ModelMapping;
use switchyard_core::pricing::TieredPricing;
use switchyard_core::routing::{AffinityTarget, AffinityUse, AllHealthy, RouteRequest, resolve};
use switchyard_core::settings::{PriorityMode, RoutingSettings, SchedulingMode};
use switchyard_core::{ApiFormat, SecretString};

const PROVIDERS: usize = 100;
const KEYS_PER_PROVIDER: usize = 10;
const MODEL_ID: &str = "g-gpt-4o-mini";
const MODEL: &str = "gpt-4o-mini";

fn key(provider: usize, index: usize, endpoint_id: &str) -> ProviderKey {
    let id = format!("k-{provider:03}-{index:02}");
    ProviderKey {
        // Three key priorities inside each endpoint, so the in-provider order is not trivial.
        internal_priority: Some((index % 3) as i32),
        // Global priorities spread over 7 levels (many ties to hash), some keys without one.
        global_priority: (index != 9)
            .then_some(((provider * KEYS_PER_PROVIDER + index) % 7) as i32),
        max_concurrent: Some(4096),
        ..ProviderKey::new(&id, endpoint_id, SecretString::new(format!("sk-{id}")))
    }
}

/// Some mappings: every 4th provider has two equally preferred upstream names (a per-client hash
/// picks one), every 7th one also has a better-priority name restricted to another format (which
/// an OPENAI request must skip).
fn mappings(provider: usize) -> Vec<ModelMapping> {
    let mut out = Vec::new();
    if provider.is_multiple_of(4) {
        for name in ["gpt-4o-mini-2024-07-18", "gpt-4o-mini-eu"] {
            out.push(ModelMapping {
                name: name.to_owned(),
                priority: 2,
                api_formats: None,
            });
        }
    }
    if provider.is_multiple_of(7) {
        out.push(ModelMapping {
            name: "gpt-4o-mini-responses".to_owned(),
            priority: 1,
            api_formats: Some(vec![ApiFormat::OpenAiCli]),
        });
    }
    out
}

fn provider(index: usize) -> Provider {
    let id = format!("p-{index:03}");
    let endpoint_id = format!("e-{index:03}-OPENAI");
    let keys = (0..KEYS_PER_PROVIDER)
        .map(|k| key(index, k, &endpoint_id))
        .collect();
    Provider {
        id: id.clone(),
        name: format!("provider-{index:03}"),
        // Ten priority levels of ten providers each: ties broken by name.
        priority: (index % 10) as i32 * 10,
        billing_type: BillingType::PayAsYouGo,
        endpoints: vec![Endpoint {
            id: endpoint_id,
            provider_id: id,
            api_format: ApiFormat::OpenAi,
            base_url: format!("https://provider-{index:03}.example"),
            custom_path: None,
            headers: BTreeMap::new(),
            timeout_secs: 300,
            header_timeout_secs: 30,
            first_byte_timeout_secs: 30,
            max_retries: 2,
            max_concurrent: None,
            format_conversion: None,
            keys,
        }],
        models: [(
            MODEL_ID.to_owned(),
            ProviderModel {
                id: format!("pm-{index:03}"),
                global_model_id: MODEL_ID.to_owned(),
                provider_model_name: MODEL.to_owned(),
                mappings: mappings(index),
                pricing: None,
                price_per_request: None,
                supports_streaming: true,
            },
        )]
        .into_iter()
        .collect(),
    }
}

fn catalog(priority_mode: PriorityMode) -> Catalog {
    Catalog::build(
        1,
        CatalogParts {
            providers: (0..PROVIDERS).map(provider).collect(),
            global_models: vec![GlobalModel {
                id: MODEL_ID.to_owned(),
                name: MODEL.to_owned(),
                default_pricing: TieredPricing::flat(0.15, 0.60),
                default_price_per_request: None,
                supported_capabilities: vec![],
            }],
            aliases: vec![("mini".to_owned(), MODEL_ID.to_owned())],
            settings: RoutingSettings {
                priority_mode,
                scheduling_mode: SchedulingMode::CacheAffinity,
                format_conversion: false,
            },
            ..CatalogParts::default()
        },
    )
}

fn gateway_key() -> GatewayKey {
    GatewayKey {
        id: "gk-bench".to_owned(),
        user_id: "u-bench".to_owned(),
        name: "bench".to_owned(),
        expires_at: None,
        is_standalone: false,
        balance_usd: None,
        balance_used_usd: 0.0,
        allowed_providers: None,
        allowed_endpoints: None,
        allowed_api_formats: None,
        allowed_models: None,
        force_capabilities: BTreeMap::new(),
    }
}

fn user() -> User {
    User {
        id: "u-bench".to_owned(),
        name: "bench".to_owned(),
        is_admin: false,
        allowed_providers: None,
        allowed_endpoints: None,
        allowed_models: None,
        model_capability_settings: BTreeMap::new(),
        quota_usd: None,
        used_usd: 0.0,
    }
}

/// The deepest candidate whose promotion is a real hit (usable, nothing strictly better), so
/// the benchmark pays for the search and the rotation, not for an early exit.
fn affinity_target(catalog: &Catalog, req: &RouteRequest<'_>) -> AffinityTarget {
    let order = resolve(catalog, req, &AllHealthy, None).expect("the bench catalog resolves");
    assert_eq!(order.candidates.len(), PROVIDERS * KEYS_PER_PROVIDER);
    order
        .candidates
        .iter()
        .skip(1)
        .rev()
        .map(|c| AffinityTarget {
            provider_id: c.provider.id.clone(),
            endpoint_id: c.endpoint().id.clone(),
            provider_key_id: c.key().id.clone(),
        })
        .find(|target| {
            resolve(catalog, req, &AllHealthy, Some(target))
                .is_ok_and(|r| r.affinity == AffinityUse::Hit)
        })
        .expect("some candidate other than the first can be an affinity hit")
}

fn bench_resolve(c: &mut Criterion) {
    let gateway_key = gateway_key();
    let user = user();
    let capabilities = BTreeMap::new();
    let now = DateTime::<Utc>::from_timestamp(1_750_000_000, 0).expect("a valid instant");
    let req = RouteRequest {
        model: MODEL,
        format: ApiFormat::OpenAi,
        stream: false,
        gateway_key: &gateway_key,
        user: &user,
        capabilities: &capabilities,
        affinity_key: &gateway_key.id,
        now,
    };

    let mut group = c.benchmark_group("resolve_100x10");
    // One element = one candidate built, ranked and sorted.
    group.throughput(Throughput::Elements((PROVIDERS * KEYS_PER_PROVIDER) as u64));
    for (mode_name, mode) in [
        ("provider", PriorityMode::Provider),
        ("global_key", PriorityMode::GlobalKey),
    ] {
        let catalog = catalog(mode);
        let target = affinity_target(&catalog, &req);
        group.bench_function(BenchmarkId::new(mode_name, "no_affinity"), |b| {
            b.iter(|| resolve(black_box(&catalog), black_box(&req), &AllHealthy, None));
        });
        group.bench_function(BenchmarkId::new(mode_name, "affinity_hit"), |b| {
            b.iter(|| {
                resolve(
                    black_box(&catalog),
                    black_box(&req),
                    &AllHealthy,
                    Some(black_box(&target)),
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_resolve);
criterion_main!(benches);
