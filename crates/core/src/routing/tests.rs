//! Unit and property tests of candidate resolution, on small catalogs built with
//! `Catalog::build`.

use super::*;
use crate::catalog::{BillingType, CatalogParts, ProviderModel};
use crate::mapping::ModelMapping;
use crate::pricing::TieredPricing;
use crate::settings::{PriorityMode, RoutingSettings, SchedulingMode};
use crate::{ApiFormat, SecretString};
use chrono::{Duration, TimeZone};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};

const MODEL_ID: &str = "g-sonnet";
const MODEL: &str = "claude-sonnet";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("valid instant")
}

fn global_model() -> GlobalModel {
    GlobalModel {
        id: MODEL_ID.into(),
        name: MODEL.into(),
        default_pricing: TieredPricing::flat(3.0, 15.0),
        default_price_per_request: None,
        supported_capabilities: vec![],
    }
}

fn key(id: &str) -> ProviderKey {
    ProviderKey {
        internal_priority: Some(50),
        ..ProviderKey::new(id, "", SecretString::new(format!("sk-{id}")))
    }
}

fn key_with(id: &str, internal: Option<i32>, global: Option<i32>) -> ProviderKey {
    ProviderKey {
        internal_priority: internal,
        global_priority: global,
        ..key(id)
    }
}

fn provider_model(upstream: &str) -> ProviderModel {
    ProviderModel {
        id: format!("pm-{upstream}"),
        global_model_id: MODEL_ID.into(),
        provider_model_name: upstream.into(),
        mappings: vec![],
        pricing: None,
        price_per_request: None,
        supports_streaming: true,
    }
}

/// A provider serving the model on one endpoint per given format, each endpoint with the keys.
fn provider_with(
    name: &str,
    priority: i32,
    formats: &[ApiFormat],
    keys: Vec<ProviderKey>,
) -> Provider {
    let id = format!("p-{name}");
    let endpoints = formats
        .iter()
        .map(|format| {
            let endpoint_id = format!("e-{name}-{}", format.as_str());
            Endpoint {
                id: endpoint_id.clone(),
                provider_id: id.clone(),
                api_format: *format,
                base_url: format!("https://{name}.example"),
                custom_path: None,
                headers: BTreeMap::new(),
                timeout_secs: 300,
                header_timeout_secs: 30,
                first_byte_timeout_secs: 30,
                max_retries: 2,
                max_concurrent: None,
                format_conversion: None,
                keys: keys
                    .iter()
                    .map(|k| ProviderKey {
                        endpoint_id: endpoint_id.clone(),
                        ..k.clone()
                    })
                    .collect(),
            }
        })
        .collect();
    Provider {
        id,
        name: name.into(),
        priority,
        billing_type: BillingType::PayAsYouGo,
        endpoints,
        models: [(
            MODEL_ID.to_owned(),
            provider_model(&format!("{name}-sonnet")),
        )]
        .into_iter()
        .collect(),
    }
}

fn provider(name: &str, priority: i32, keys: Vec<ProviderKey>) -> Provider {
    provider_with(name, priority, &[ApiFormat::Claude], keys)
}

fn catalog_with(providers: Vec<Provider>, settings: RoutingSettings) -> Catalog {
    Catalog::build(
        1,
        CatalogParts {
            providers,
            global_models: vec![global_model()],
            aliases: vec![("sonnet".into(), MODEL_ID.into())],
            settings,
            ..CatalogParts::default()
        },
    )
}

fn catalog(providers: Vec<Provider>) -> Catalog {
    catalog_with(providers, RoutingSettings::default())
}

fn gateway_key() -> GatewayKey {
    GatewayKey {
        id: "gk-1".into(),
        user_id: "u-1".into(),
        name: "client".into(),
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
        id: "u-1".into(),
        name: "alice".into(),
        is_admin: false,
        allowed_providers: None,
        allowed_endpoints: None,
        allowed_models: None,
        model_capability_settings: BTreeMap::new(),
        quota_usd: None,
        used_usd: 0.0,
    }
}

/// Everything a request borrows, owned by the test.
struct Req {
    model: String,
    format: ApiFormat,
    stream: bool,
    gateway_key: GatewayKey,
    user: User,
    capabilities: BTreeMap<String, bool>,
    affinity_key: String,
}

impl Req {
    fn new() -> Self {
        Req {
            model: MODEL.into(),
            format: ApiFormat::Claude,
            stream: false,
            gateway_key: gateway_key(),
            user: user(),
            capabilities: BTreeMap::new(),
            affinity_key: "gk-1".into(),
        }
    }

    fn caps(mut self, caps: &[(&str, bool)]) -> Self {
        self.capabilities = caps.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
        self
    }

    fn client(mut self, affinity_key: &str) -> Self {
        self.affinity_key = affinity_key.into();
        self
    }

    fn route(&self) -> RouteRequest<'_> {
        RouteRequest {
            model: &self.model,
            format: self.format,
            stream: self.stream,
            gateway_key: &self.gateway_key,
            user: &self.user,
            capabilities: &self.capabilities,
            affinity_key: &self.affinity_key,
            now: now(),
        }
    }
}

/// A routing view with explicit circuit states and cool-downs.
#[derive(Default)]
struct View {
    circuits: HashMap<String, KeyCircuit>,
    cooldowns: HashMap<String, DateTime<Utc>>,
}

impl View {
    fn open(mut self, key_id: &str, secs: i64) -> Self {
        self.circuits.insert(
            key_id.into(),
            KeyCircuit::Open {
                until: now() + Duration::seconds(secs),
            },
        );
        self
    }

    fn half_open(mut self, key_id: &str) -> Self {
        self.circuits.insert(key_id.into(), KeyCircuit::HalfOpen);
        self
    }

    fn cooling(mut self, key_id: &str, secs: i64) -> Self {
        self.cooldowns
            .insert(key_id.into(), now() + Duration::seconds(secs));
        self
    }
}

impl RoutingView for View {
    fn circuit(&self, provider_key_id: &str) -> KeyCircuit {
        self.circuits
            .get(provider_key_id)
            .copied()
            .unwrap_or(KeyCircuit::Closed)
    }

    fn cooldown_until(&self, provider_key_id: &str) -> Option<DateTime<Utc>> {
        self.cooldowns.get(provider_key_id).copied()
    }
}

fn run(catalog: &Catalog, req: &Req) -> Resolution {
    resolve(catalog, &req.route(), &AllHealthy, None).expect("resolves")
}

fn run_with(
    catalog: &Catalog,
    req: &Req,
    view: &View,
    target: Option<&AffinityTarget>,
) -> Resolution {
    resolve(catalog, &req.route(), view, target).expect("resolves")
}

fn key_ids(resolution: &Resolution) -> Vec<String> {
    resolution
        .candidates
        .iter()
        .map(|c| c.key().id.clone())
        .collect()
}

fn skip_of<'r>(resolution: &'r Resolution, key_id: &str) -> Option<&'r SkipReason> {
    resolution
        .candidates
        .iter()
        .find(|c| c.key().id == key_id)
        .expect("candidate present")
        .skip
        .as_ref()
}

fn target(provider: &str, key_id: &str) -> AffinityTarget {
    AffinityTarget {
        provider_id: format!("p-{provider}"),
        endpoint_id: format!("e-{provider}-CLAUDE"),
        provider_key_id: key_id.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// 1–2. Model and access.

#[test]
fn unknown_model_is_not_found_and_aliases_and_upstream_names_resolve() {
    let catalog = catalog(vec![provider("a", 10, vec![key("k1")])]);
    let mut req = Req::new();
    req.model = "gpt-9".into();
    assert_eq!(
        resolve(&catalog, &req.route(), &AllHealthy, None).map(|r| r.candidates.len()),
        Err(RouteError::ModelNotFound)
    );
    for name in ["sonnet", " claude-sonnet ", "a-sonnet"] {
        req.model = name.into();
        let resolution = run(&catalog, &req);
        assert_eq!(resolution.global_model.id, MODEL_ID);
        assert_eq!(key_ids(&resolution), ["k1"]);
    }
}

#[test]
fn model_lists_none_allows_all_empty_allows_nothing_and_either_name_matches() {
    let catalog = catalog(vec![provider("a", 10, vec![key("k1")])]);
    let outcome = |key_list: Option<&[&str]>, user_list: Option<&[&str]>, model: &str| {
        let mut req = Req::new();
        req.model = model.into();
        req.gateway_key.allowed_models =
            key_list.map(|l| l.iter().map(|s| s.to_string()).collect());
        req.user.allowed_models = user_list.map(|l| l.iter().map(|s| s.to_string()).collect());
        resolve(&catalog, &req.route(), &AllHealthy, None).map(|r| r.candidates.len())
    };
    assert_eq!(outcome(None, None, MODEL), Ok(1));
    // Empty means nothing, on the gateway key and on the user alike (§11.1 #13).
    assert_eq!(
        outcome(Some(&[]), None, MODEL),
        Err(RouteError::ModelNotAllowed)
    );
    assert_eq!(
        outcome(None, Some(&[]), MODEL),
        Err(RouteError::ModelNotAllowed)
    );
    // The canonical name allows an alias; the alias allows itself only.
    assert_eq!(outcome(Some(&[MODEL]), None, "sonnet"), Ok(1));
    assert_eq!(outcome(Some(&["sonnet"]), None, "sonnet"), Ok(1));
    assert_eq!(
        outcome(Some(&["sonnet"]), None, MODEL),
        Err(RouteError::ModelNotAllowed)
    );
    // Both must allow.
    assert_eq!(
        outcome(Some(&[MODEL]), Some(&["other"]), MODEL),
        Err(RouteError::ModelNotAllowed)
    );
    assert_eq!(outcome(Some(&[MODEL]), Some(&["sonnet"]), "sonnet"), Ok(1));
}

#[test]
fn format_list_restricts_formats_and_empty_allows_none() {
    let catalog = catalog(vec![provider("a", 10, vec![key("k1")])]);
    let mut req = Req::new();
    req.gateway_key.allowed_api_formats = Some(vec![ApiFormat::OpenAi]);
    assert_eq!(
        resolve(&catalog, &req.route(), &AllHealthy, None).map(|r| r.candidates.len()),
        Err(RouteError::FormatNotAllowed)
    );
    req.gateway_key.allowed_api_formats = Some(vec![]);
    assert_eq!(
        resolve(&catalog, &req.route(), &AllHealthy, None).map(|r| r.candidates.len()),
        Err(RouteError::FormatNotAllowed)
    );
    req.gateway_key.allowed_api_formats = Some(vec![ApiFormat::OpenAi, ApiFormat::Claude]);
    assert_eq!(key_ids(&run(&catalog, &req)), ["k1"]);
}

#[test]
fn provider_and_endpoint_lists_filter_silently_by_id_or_name() {
    let catalog = catalog(vec![
        provider("a", 10, vec![key("ka")]),
        provider("b", 20, vec![key("kb")]),
        provider("c", 30, vec![key("kc")]),
    ]);
    let mut req = Req::new();
    req.gateway_key.allowed_providers = Some(vec!["p-a".into(), "b".into()]);
    assert_eq!(key_ids(&run(&catalog, &req)), ["ka", "kb"]);
    req.user.allowed_providers = Some(vec!["b".into(), "c".into()]);
    assert_eq!(key_ids(&run(&catalog, &req)), ["kb"]);

    let mut req = Req::new();
    req.gateway_key.allowed_endpoints = Some(vec!["e-c-CLAUDE".into(), "e-a-CLAUDE".into()]);
    assert_eq!(key_ids(&run(&catalog, &req)), ["ka", "kc"]);
    req.user.allowed_endpoints = Some(vec!["e-c-CLAUDE".into()]);
    assert_eq!(key_ids(&run(&catalog, &req)), ["kc"]);

    // An empty list hides every provider: nothing serves the model, and the error says why.
    let mut req = Req::new();
    req.user.allowed_providers = Some(vec![]);
    let err = resolve(&catalog, &req.route(), &AllHealthy, None).expect_err("nothing allowed");
    assert!(matches!(
        err,
        RouteError::NoCandidate {
            restricted: true,
            ..
        }
    ));
    assert!(err.to_string().contains("restrictions"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 3–4. Provider and endpoint filters.

#[test]
fn providers_without_the_model_or_streaming_or_the_format_are_omitted() {
    let mut no_model = provider("nomodel", 1, vec![key("k-nomodel")]);
    no_model.models.clear();
    let mut no_stream = provider("nostream", 2, vec![key("k-nostream")]);
    for model in no_stream.models.values_mut() {
        model.supports_streaming = false;
    }
    let openai_only = provider_with("openai", 3, &[ApiFormat::OpenAi], vec![key("k-openai")]);
    let claude_cli = provider_with("cli", 4, &[ApiFormat::ClaudeCli], vec![key("k-cli")]);
    let keyless = provider("keyless", 5, vec![]);
    let both = provider_with(
        "both",
        6,
        &[ApiFormat::OpenAi, ApiFormat::Claude],
        vec![key("k-both")],
    );
    let catalog = catalog(vec![
        no_model,
        no_stream,
        openai_only,
        claude_cli,
        keyless,
        both,
    ]);

    // A Claude Code endpoint carries the same payloads: it serves Claude clients too.
    let mut req = Req::new();
    assert_eq!(
        key_ids(&run(&catalog, &req)),
        ["k-nostream", "k-cli", "k-both"]
    );
    req.stream = true;
    let resolution = run(&catalog, &req);
    assert_eq!(key_ids(&resolution), ["k-cli", "k-both"]);
    assert_eq!(
        resolution.candidates[1].endpoint().api_format,
        ApiFormat::Claude
    );
    req.format = ApiFormat::OpenAi;
    let resolution = run(&catalog, &req);
    assert_eq!(key_ids(&resolution), ["k-openai", "k-both"]);
    assert!(
        resolution
            .candidates
            .iter()
            .all(|c| c.endpoint().api_format == ApiFormat::OpenAi)
    );
    req.format = ApiFormat::Gemini;
    let err = resolve(&catalog, &req.route(), &AllHealthy, None).expect_err("no gemini");
    assert_eq!(
        err,
        RouteError::NoCandidate {
            model: MODEL.into(),
            format: ApiFormat::Gemini,
            stream: true,
            restricted: false,
        }
    );
    assert_eq!(
        err.to_string(),
        "no active provider serves model `claude-sonnet` for GEMINI streaming requests"
    );
    assert_eq!(err.as_label(), "no_candidate");
}

#[test]
fn model_capability_list_omits_providers_only_when_it_restricts() {
    let providers = || vec![provider("a", 10, vec![key("k1")])];
    let req = Req::new().caps(&[("context_1m", true)]);
    let catalog_unrestricted = catalog(providers());
    // Empty supported list: no restriction (the key then lacks the capability: skipped).
    assert_eq!(
        skip_of(&run(&catalog_unrestricted, &req), "k1"),
        Some(&SkipReason::MissingCapability("context_1m".into()))
    );
    let restricted = |caps: &[&str]| {
        let mut model = global_model();
        model.supported_capabilities = caps.iter().map(|c| c.to_string()).collect();
        Catalog::build(
            1,
            CatalogParts {
                providers: providers(),
                global_models: vec![model],
                ..CatalogParts::default()
            },
        )
    };
    assert!(matches!(
        resolve(&restricted(&["cache_1h"]), &req.route(), &AllHealthy, None),
        Err(RouteError::NoCandidate { .. })
    ));
    assert_eq!(run(&restricted(&["context_1m"]), &req).candidates.len(), 1);
    // Explicitly refused capabilities are not requirements.
    let refusing = Req::new().caps(&[("context_1m", false)]);
    assert_eq!(
        run(&restricted(&["cache_1h"]), &refusing).candidates.len(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Skip reasons.

#[test]
fn live_state_skips_open_and_cooling_keys_but_not_half_open_or_elapsed_ones() {
    let catalog = catalog(vec![provider(
        "a",
        10,
        vec![
            key("open"),
            key("half"),
            key("cool"),
            key("elapsed"),
            key("cooled"),
        ],
    )]);
    let view = View::default()
        .open("open", 12)
        .half_open("half")
        .cooling("cool", 3)
        .open("elapsed", 0)
        .cooling("cooled", -5);
    let resolution = run_with(&catalog, &Req::new(), &view, None);
    assert_eq!(resolution.candidates.len(), 5);
    let open = skip_of(&resolution, "open").expect("open is skipped");
    assert_eq!(
        open,
        &SkipReason::CircuitOpen {
            until: now() + Duration::seconds(12),
            remaining_secs: 12
        }
    );
    assert_eq!(open.to_string(), "circuit open for 12 s");
    assert_eq!(open.as_label(), "circuit_open");
    let cool = skip_of(&resolution, "cool").expect("cooling is skipped");
    assert_eq!(cool.as_label(), "cooling_down");
    assert_eq!(cool.to_string(), "cooling down after a 429 for 3 s");
    assert_eq!(skip_of(&resolution, "half"), None);
    assert_eq!(skip_of(&resolution, "elapsed"), None);
    assert_eq!(skip_of(&resolution, "cooled"), None);
}

#[test]
fn key_configuration_skips_expired_keys_and_models_not_allowed() {
    let expired = ProviderKey {
        expires_at: Some(now()),
        ..key("expired")
    };
    let later = ProviderKey {
        expires_at: Some(now() + Duration::seconds(1)),
        ..key("later")
    };
    let none = ProviderKey {
        allowed_models: Some(vec![]),
        ..key("none")
    };
    let alias_only = ProviderKey {
        allowed_models: Some(vec!["sonnet".into()]),
        ..key("alias-only")
    };
    let canonical = ProviderKey {
        allowed_models: Some(vec![MODEL.into()]),
        ..key("canonical")
    };
    let catalog = catalog(vec![provider(
        "a",
        10,
        vec![expired, later, none, alias_only, canonical],
    )]);
    let resolution = run(&catalog, &Req::new());
    assert_eq!(
        skip_of(&resolution, "expired"),
        Some(&SkipReason::KeyExpired)
    );
    assert_eq!(skip_of(&resolution, "later"), None);
    assert_eq!(
        skip_of(&resolution, "none"),
        Some(&SkipReason::ModelNotAllowedForKey)
    );
    assert_eq!(
        skip_of(&resolution, "alias-only"),
        Some(&SkipReason::ModelNotAllowedForKey)
    );
    assert_eq!(skip_of(&resolution, "canonical"), None);

    let mut by_alias = Req::new();
    by_alias.model = "sonnet".into();
    let resolution = run(&catalog, &by_alias);
    assert_eq!(skip_of(&resolution, "alias-only"), None);
    assert_eq!(skip_of(&resolution, "canonical"), None);
}

#[test]
fn skip_reasons_are_checked_in_order() {
    let everything_wrong = ProviderKey {
        expires_at: Some(now() - Duration::seconds(1)),
        allowed_models: Some(vec![]),
        ..key("k")
    };
    let catalog = catalog(vec![provider("a", 10, vec![everything_wrong])]);
    let req = Req::new();
    let label = |view: &View| {
        skip_of(&run_with(&catalog, &req, view, None), "k")
            .map(SkipReason::as_label)
            .expect("skipped")
    };
    assert_eq!(
        label(&View::default().open("k", 5).cooling("k", 5)),
        "circuit_open"
    );
    assert_eq!(label(&View::default().cooling("k", 5)), "cooling_down");
    assert_eq!(label(&View::default()), "key_expired");
}

#[test]
fn capabilities_follow_exclusive_and_compatible_rules() {
    let with_caps = |id: &str, caps: &[&str]| ProviderKey {
        capabilities: caps.iter().map(|c| (c.to_string(), true)).collect(),
        ..key(id)
    };
    let declared_false = ProviderKey {
        capabilities: BTreeMap::from([("cache_1h".to_owned(), false)]),
        ..key("declared-false")
    };
    let catalog = catalog(vec![provider(
        "a",
        10,
        vec![
            with_caps("plain", &[]),
            with_caps("cache", &["cache_1h"]),
            with_caps("long", &["context_1m"]),
            declared_false,
        ],
    )]);
    let skips = |req: &Req| -> Vec<(String, Option<String>)> {
        run(&catalog, req)
            .candidates
            .iter()
            .map(|c| (c.key().id.clone(), c.skip.as_ref().map(ToString::to_string)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect()
    };
    let labels = |req: &Req| -> BTreeMap<String, Option<&'static str>> {
        run(&catalog, req)
            .candidates
            .iter()
            .map(|c| {
                (
                    c.key().id.clone(),
                    c.skip.as_ref().map(SkipReason::as_label),
                )
            })
            .collect()
    };
    let expect =
        |pairs: &[(&str, Option<&'static str>)]| -> BTreeMap<String, Option<&'static str>> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };

    // Nothing asked: the exclusive (premium) key is kept for those who ask; compatible is fine.
    assert_eq!(
        labels(&Req::new()),
        expect(&[
            ("plain", None),
            ("cache", Some("unrequested_exclusive_capability")),
            ("long", None),
            ("declared-false", None),
        ])
    );
    // Exclusive required: only keys with it.
    assert_eq!(
        labels(&Req::new().caps(&[("cache_1h", true)])),
        expect(&[
            ("plain", Some("missing_capability")),
            ("cache", None),
            ("long", Some("missing_capability")),
            ("declared-false", Some("missing_capability")),
        ])
    );
    // Exclusive refused: keys with it are refused, others serve.
    assert_eq!(
        labels(&Req::new().caps(&[("cache_1h", false)])),
        expect(&[
            ("plain", None),
            ("cache", Some("refused_capability")),
            ("long", None),
            ("declared-false", None),
        ])
    );
    // Compatible required: only keys with it; compatible refused: no effect.
    assert_eq!(
        labels(&Req::new().caps(&[("context_1m", true)])),
        expect(&[
            ("plain", Some("missing_capability")),
            ("cache", Some("missing_capability")),
            ("long", None),
            ("declared-false", Some("missing_capability")),
        ])
    );
    assert_eq!(
        labels(&Req::new().caps(&[("context_1m", false)])),
        expect(&[
            ("plain", None),
            ("cache", Some("unrequested_exclusive_capability")),
            ("long", None),
            ("declared-false", None),
        ])
    );
    let texts = skips(&Req::new().caps(&[("cache_1h", false)]));
    assert!(texts.contains(&(
        "cache".into(),
        Some("key has capability `cache_1h` the request refused".into())
    )));
}

#[test]
fn only_skipped_candidates_are_still_returned() {
    let catalog = catalog(vec![provider("a", 10, vec![key("k1"), key("k2")])]);
    let view = View::default().open("k1", 30).cooling("k2", 30);
    let resolution = run_with(&catalog, &Req::new(), &view, None);
    assert_eq!(resolution.candidates.len(), 2);
    assert!(resolution.candidates.iter().all(|c| !c.is_usable()));
}

// ---------------------------------------------------------------------------------------------
// 6. Upstream model names.

fn mapping(name: &str, priority: u32, formats: Option<&[ApiFormat]>) -> ModelMapping {
    ModelMapping {
        name: name.into(),
        priority,
        api_formats: formats.map(<[ApiFormat]>::to_vec),
    }
}

fn model_with(mappings: Vec<ModelMapping>) -> ProviderModel {
    ProviderModel {
        mappings,
        ..provider_model("primary")
    }
}

#[test]
fn mapping_choice_by_priority_and_format_with_fallback_to_the_primary_name() {
    let claude = ApiFormat::Claude;
    let model = model_with(vec![]);
    assert_eq!(upstream_model_name(&model, claude, "c"), "primary");
    let model = model_with(vec![mapping("  ", 1, None), mapping("", 1, None)]);
    assert_eq!(upstream_model_name(&model, claude, "c"), "primary");
    let model = model_with(vec![
        mapping("slow", 3, None),
        mapping("fast", 2, None),
        mapping("openai-only", 1, Some(&[ApiFormat::OpenAi])),
    ]);
    assert_eq!(upstream_model_name(&model, claude, "c"), "fast");
    assert_eq!(
        upstream_model_name(&model, ApiFormat::OpenAi, "c"),
        "openai-only"
    );
    let model = model_with(vec![mapping("gemini-only", 1, Some(&[ApiFormat::Gemini]))]);
    assert_eq!(upstream_model_name(&model, claude, "c"), "primary");
    // Priority 0 (refused by validation) counts as 1.
    let model = model_with(vec![mapping("zero", 0, None), mapping("two", 2, None)]);
    assert_eq!(upstream_model_name(&model, claude, "c"), "zero");
}

#[test]
fn mapping_ties_are_stable_per_client_and_spread_across_clients() {
    let model = model_with(vec![
        mapping("north", 1, None),
        mapping("south", 1, None),
        mapping("east", 1, None),
        mapping("backup", 2, None),
    ]);
    let mut seen = BTreeSet::new();
    for client in 0..64 {
        let client = format!("client-{client}");
        let name = upstream_model_name(&model, ApiFormat::Claude, &client);
        assert_eq!(
            name,
            upstream_model_name(&model, ApiFormat::Claude, &client)
        );
        assert_ne!(name, "backup");
        seen.insert(name.to_owned());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // The hash, not the list order, decides.
    let reversed = model_with(vec![
        mapping("east", 1, None),
        mapping("south", 1, None),
        mapping("north", 1, None),
    ]);
    for client in ["a", "b", "c", "d"] {
        assert_eq!(
            upstream_model_name(&model, ApiFormat::Claude, client),
            upstream_model_name(&reversed, ApiFormat::Claude, client)
        );
    }
}

#[test]
fn candidates_carry_their_providers_upstream_name() {
    let mut mapped = provider("mapped", 10, vec![key("k1")]);
    if let Some(model) = mapped.models.get_mut(MODEL_ID) {
        model.mappings = vec![mapping("claude-sonnet-4@20250514", 1, None)];
    }
    let catalog = catalog(vec![mapped, provider("plain", 20, vec![key("k2")])]);
    let names: Vec<_> = run(&catalog, &Req::new())
        .candidates
        .iter()
        .map(|c| c.upstream_model.clone())
        .collect();
    assert_eq!(names, ["claude-sonnet-4@20250514", "plain-sonnet"]);
}

// ---------------------------------------------------------------------------------------------
// 7. Ordering.

#[test]
fn provider_mode_orders_by_provider_then_key_priority_with_missing_priorities_last() {
    let catalog = catalog(vec![
        provider("b", 20, vec![key_with("b1", Some(1), None)]),
        provider(
            "a",
            10,
            vec![
                key_with("a-none", None, Some(0)),
                key_with("a5", Some(5), None),
                key_with("a1", Some(1), None),
            ],
        ),
        provider("c", 10, vec![key_with("c0", Some(0), None)]),
    ]);
    assert_eq!(
        key_ids(&run(&catalog, &Req::new())),
        ["a1", "a5", "a-none", "c0", "b1"]
    );
}

#[test]
fn equal_priority_keys_spread_across_clients_and_stay_put_per_client() {
    let keys: Vec<_> = (0..4).map(|i| key(&format!("k{i}"))).collect();
    for settings in [
        RoutingSettings::default(),
        RoutingSettings {
            priority_mode: PriorityMode::GlobalKey,
            ..RoutingSettings::default()
        },
    ] {
        let catalog = catalog_with(vec![provider("a", 10, keys.clone())], settings);
        let mut firsts = BTreeSet::new();
        for client in 0..64 {
            let req = Req::new().client(&format!("client-{client}"));
            let order = key_ids(&run(&catalog, &req));
            assert_eq!(order, key_ids(&run(&catalog, &req)), "stable per client");
            let mut expected = order.clone();
            expected.sort_by_key(|id| affinity_hash(&req.affinity_key, id));
            assert_eq!(order, expected, "hash order");
            firsts.insert(order[0].clone());
        }
        assert_eq!(firsts.len(), 4, "{firsts:?}");
    }
}

#[test]
fn global_key_mode_orders_by_global_priority_across_providers_and_spreads_ties() {
    let settings = RoutingSettings {
        priority_mode: PriorityMode::GlobalKey,
        ..RoutingSettings::default()
    };
    let catalog = catalog_with(
        vec![
            provider(
                "a",
                1,
                vec![
                    key_with("a-late", Some(0), None),
                    key_with("a-g5", Some(9), Some(5)),
                ],
            ),
            provider("b", 50, vec![key_with("b-g1", Some(9), Some(1))]),
            provider("c", 60, vec![key_with("c-g5", Some(0), Some(5))]),
            provider("d", 70, vec![key_with("d-g5", Some(0), Some(5))]),
        ],
        settings,
    );
    let mut middle = BTreeSet::new();
    for client in 0..32 {
        let order = key_ids(&run(&catalog, &Req::new().client(&format!("c{client}"))));
        assert_eq!(order[0], "b-g1");
        assert_eq!(order[4], "a-late");
        middle.insert(order[1].clone());
    }
    // Equal global priorities spread across providers, whatever the provider priority.
    assert_eq!(middle.len(), 3, "{middle:?}");
}

#[test]
fn one_global_sort_across_sixty_providers() {
    // Every provider serves the model; priorities interleave with the insertion order, and the
    // reference would have sorted each page of 20 on its own.
    let providers: Vec<_> = (0..60)
        .map(|i| {
            provider(
                &format!("p{i:02}"),
                i * 37 % 11,
                vec![
                    key_with(&format!("k{i:02}-x"), Some(i % 3), None),
                    key_with(&format!("k{i:02}-y"), Some(1), None),
                ],
            )
        })
        .collect();
    let catalog = catalog(providers);
    let resolution = run(&catalog, &Req::new());
    assert_eq!(resolution.candidates.len(), 120);
    let keys: Vec<_> = resolution
        .candidates
        .iter()
        .map(|c| {
            (
                c.provider.priority,
                c.provider.name.clone(),
                c.key().internal_priority,
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
    let ids: BTreeSet<_> = key_ids(&resolution).into_iter().collect();
    assert_eq!(ids.len(), 120);
}

// ---------------------------------------------------------------------------------------------
// 8. Affinity.

#[test]
fn affinity_hit_moves_the_target_to_the_front() {
    let catalog = catalog(vec![
        provider("a", 10, vec![key("a1"), key("a2")]),
        provider("b", 10, vec![key("b1")]),
    ]);
    let req = Req::new();
    let plain = key_ids(&run(&catalog, &req));
    assert_eq!(plain.len(), 3);
    for (provider_name, key_id) in [("a", "a1"), ("a", "a2"), ("b", "b1")] {
        let t = target(provider_name, key_id);
        let resolution = run_with(&catalog, &req, &View::default(), Some(&t));
        assert_eq!(resolution.affinity, AffinityUse::Hit);
        let order = key_ids(&resolution);
        assert_eq!(order[0], key_id);
        assert!(resolution.candidates[0].is_cached);
        assert_eq!(
            resolution.candidates.iter().filter(|c| c.is_cached).count(),
            1
        );
        // The others keep their relative order.
        let rest: Vec<_> = plain.iter().filter(|k| *k != key_id).cloned().collect();
        assert_eq!(order[1..], rest[..]);
    }
}

#[test]
fn affinity_to_a_skipped_or_vanished_candidate_is_unusable() {
    let catalog = catalog(vec![provider("a", 10, vec![key("a1"), key("a2")])]);
    let req = Req::new();
    let plain = key_ids(&run(&catalog, &req));
    let check = |view: &View, t: &AffinityTarget| {
        let resolution = run_with(&catalog, &req, view, Some(t));
        assert_eq!(resolution.affinity, AffinityUse::Unusable);
        assert_eq!(key_ids(&resolution), plain);
        assert!(resolution.candidates.iter().all(|c| !c.is_cached));
    };
    check(&View::default().open("a2", 30), &target("a", "a2"));
    check(&View::default().cooling("a2", 30), &target("a", "a2"));
    check(&View::default(), &target("a", "gone"));
    check(&View::default(), &target("zzz", "a1"));
    // Same key id under another endpoint is not the same candidate.
    let other_endpoint = AffinityTarget {
        endpoint_id: "e-a-OPENAI".into(),
        ..target("a", "a1")
    };
    check(&View::default(), &other_endpoint);
}

#[test]
fn fallback_affinity_is_dropped_when_the_primary_recovers_and_kept_while_it_is_down() {
    let catalog = catalog(vec![
        provider("primary", 10, vec![key("p1")]),
        provider("fallback", 20, vec![key("f1")]),
    ]);
    let req = Req::new();
    let t = target("fallback", "f1");

    let healthy = run_with(&catalog, &req, &View::default(), Some(&t));
    assert_eq!(healthy.affinity, AffinityUse::Dropped);
    assert_eq!(key_ids(&healthy), ["p1", "f1"]);
    assert!(healthy.candidates.iter().all(|c| !c.is_cached));

    // A half-open primary is usable, so it gets probed rather than starved by sticky clients.
    let half_open = run_with(&catalog, &req, &View::default().half_open("p1"), Some(&t));
    assert_eq!(half_open.affinity, AffinityUse::Dropped);

    for view in [
        View::default().open("p1", 60),
        View::default().cooling("p1", 60),
    ] {
        let down = run_with(&catalog, &req, &view, Some(&t));
        assert_eq!(down.affinity, AffinityUse::Hit);
        assert_eq!(key_ids(&down), ["f1", "p1"]);
        assert!(down.candidates[0].is_cached);
    }
}

#[test]
fn affinity_is_dropped_for_a_better_key_of_the_same_provider_but_not_for_tie_breaks() {
    let catalog = catalog(vec![
        provider(
            "a",
            10,
            vec![
                key_with("a-best", Some(1), None),
                key_with("a-worse", Some(5), None),
            ],
        ),
        // Same provider priority, better key priority: key priorities do not compare across
        // providers and the name only breaks the tie, so b's clients stay on b.
        provider("b", 10, vec![key_with("b-best", Some(0), None)]),
    ]);
    let req = Req::new();
    let worse = run_with(
        &catalog,
        &req,
        &View::default(),
        Some(&target("a", "a-worse")),
    );
    assert_eq!(worse.affinity, AffinityUse::Dropped);
    let b = run_with(
        &catalog,
        &req,
        &View::default(),
        Some(&target("b", "b-best")),
    );
    assert_eq!(b.affinity, AffinityUse::Hit);
    assert_eq!(key_ids(&b)[0], "b-best");
    let a = run_with(
        &catalog,
        &req,
        &View::default(),
        Some(&target("a", "a-best")),
    );
    assert_eq!(a.affinity, AffinityUse::Hit);
}

#[test]
fn global_mode_drops_affinity_only_for_a_better_global_priority() {
    let settings = RoutingSettings {
        priority_mode: PriorityMode::GlobalKey,
        ..RoutingSettings::default()
    };
    let catalog = catalog_with(
        vec![
            provider("a", 50, vec![key_with("a-g1", None, Some(1))]),
            provider(
                "b",
                10,
                vec![
                    key_with("b-g1", None, Some(1)),
                    key_with("b-g2", None, Some(2)),
                ],
            ),
        ],
        settings,
    );
    let req = Req::new();
    for key_id in ["a-g1", "b-g1"] {
        let provider_name = &key_id[..1];
        let r = run_with(
            &catalog,
            &req,
            &View::default(),
            Some(&target(provider_name, key_id)),
        );
        assert_eq!(r.affinity, AffinityUse::Hit, "{key_id}");
    }
    let r = run_with(&catalog, &req, &View::default(), Some(&target("b", "b-g2")));
    assert_eq!(r.affinity, AffinityUse::Dropped);
    let view = View::default().open("a-g1", 10).open("b-g1", 10);
    let r = run_with(&catalog, &req, &view, Some(&target("b", "b-g2")));
    assert_eq!(r.affinity, AffinityUse::Hit);
}

#[test]
fn fixed_order_and_missing_targets_ignore_affinity() {
    let providers = || {
        vec![
            provider("a", 10, vec![key("a1")]),
            provider("b", 20, vec![key("b1")]),
        ]
    };
    let t = target("b", "b1");
    let fixed = catalog_with(
        providers(),
        RoutingSettings {
            scheduling_mode: SchedulingMode::FixedOrder,
            ..RoutingSettings::default()
        },
    );
    let view = View::default().open("a1", 10);
    let r = run_with(&fixed, &Req::new(), &view, Some(&t));
    assert_eq!(r.affinity, AffinityUse::Miss);
    assert_eq!(key_ids(&r), ["a1", "b1"]);
    assert!(r.candidates.iter().all(|c| !c.is_cached));

    let r = run_with(&catalog(providers()), &Req::new(), &view, None);
    assert_eq!(r.affinity, AffinityUse::Miss);
}

#[test]
fn route_errors_have_labels_and_messages() {
    assert_eq!(RouteError::ModelNotFound.as_label(), "model_not_found");
    assert_eq!(RouteError::ModelNotAllowed.as_label(), "model_not_allowed");
    assert_eq!(
        RouteError::FormatNotAllowed.as_label(),
        "format_not_allowed"
    );
    let err = RouteError::NoCandidate {
        model: "m".into(),
        format: ApiFormat::OpenAi,
        stream: false,
        restricted: false,
    };
    assert_eq!(
        err.to_string(),
        "no active provider serves model `m` for OPENAI non-streaming requests"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// A generated key: (internal priority, global priority, circuit 0..4, cooling).
type KeySpec = (Option<i32>, Option<i32>, u8, bool);

/// A generated provider: (priority, also has an OpenAI endpoint, keys).
type ProviderSpec = (i32, bool, Vec<KeySpec>);

fn arb_catalog() -> impl Strategy<Value = (Vec<ProviderSpec>, bool, bool)> {
    let key = (
        proptest::option::of(0..3i32),
        proptest::option::of(0..3i32),
        0..4u8,
        any::<bool>(),
    );
    let provider = (0..4i32, any::<bool>(), proptest::collection::vec(key, 0..4));
    (
        proptest::collection::vec(provider, 1..8),
        any::<bool>(),
        any::<bool>(),
    )
}

struct Generated {
    catalog: Catalog,
    view: View,
    all: BTreeSet<String>,
}

fn generate(spec: &[ProviderSpec], global_mode: bool, fixed: bool) -> Generated {
    let mut view = View::default();
    let mut all = BTreeSet::new();
    let providers = spec
        .iter()
        .enumerate()
        .map(|(p, (priority, openai_too, keys))| {
            let keys = keys
                .iter()
                .enumerate()
                .map(|(k, (internal, global, circuit, cooling))| {
                    let id = format!("k{p}-{k}");
                    match circuit {
                        1 => view = std::mem::take(&mut view).open(&id, 30),
                        2 => view = std::mem::take(&mut view).half_open(&id),
                        _ => {}
                    }
                    if *cooling {
                        view = std::mem::take(&mut view).cooling(&id, 5);
                    }
                    all.insert(id.clone());
                    key_with(&id, *internal, *global)
                })
                .collect();
            let formats: &[ApiFormat] = if *openai_too {
                &[ApiFormat::OpenAi, ApiFormat::Claude]
            } else {
                &[ApiFormat::Claude]
            };
            provider_with(&format!("p{p}"), *priority, formats, keys)
        })
        .collect();
    let settings = RoutingSettings {
        priority_mode: if global_mode {
            PriorityMode::GlobalKey
        } else {
            PriorityMode::Provider
        },
        scheduling_mode: if fixed {
            SchedulingMode::FixedOrder
        } else {
            SchedulingMode::CacheAffinity
        },
        format_conversion: false,
    };
    Generated {
        catalog: catalog_with(providers, settings),
        view,
        all,
    }
}

fn fingerprint(r: &Resolution) -> Vec<(String, String, String, Option<SkipReason>, bool)> {
    r.candidates
        .iter()
        .map(|c| {
            (
                c.provider.id.clone(),
                c.endpoint().id.clone(),
                c.key().id.clone(),
                c.skip.clone(),
                c.is_cached,
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn order_is_a_deterministic_permutation_consistent_with_the_sort_key(
        (spec, global_mode, fixed) in arb_catalog(),
        client in "[a-z]{1,6}",
        target_pick in proptest::option::of(0..32usize),
    ) {
        let g = generate(&spec, global_mode, fixed);
        let req = Req::new().client(&client);
        let ids: Vec<_> = g.all.iter().cloned().collect();
        let t = target_pick.and_then(|i| ids.get(i % ids.len().max(1))).map(|id| {
            let provider = id.trim_start_matches('k').split('-').next().unwrap_or_default();
            target(&format!("p{provider}"), id)
        });
        let result = resolve(&g.catalog, &req.route(), &g.view, t.as_ref());
        if g.all.is_empty() {
            prop_assert!(matches!(result, Err(RouteError::NoCandidate { .. })), "no keys");
            return Ok(());
        }
        let r = result.expect("keys exist");

        // A permutation of every key of every provider's Claude endpoint.
        let got: Vec<_> = key_ids(&r);
        let set: BTreeSet<_> = got.iter().cloned().collect();
        prop_assert_eq!(got.len(), set.len());
        prop_assert_eq!(&set, &g.all);
        prop_assert!(r.candidates.iter().all(|c| c.endpoint().api_format == ApiFormat::Claude));

        // Same input, same output.
        let again = resolve(&g.catalog, &req.route(), &g.view, t.as_ref()).expect("keys exist");
        prop_assert_eq!(fingerprint(&r), fingerprint(&again));
        prop_assert_eq!(r.affinity, again.affinity);

        // At most one cached, and only a usable front-runner.
        let cached: Vec<_> = r.candidates.iter().enumerate().filter(|(_, c)| c.is_cached).collect();
        prop_assert!(cached.len() <= 1);
        if let Some((i, c)) = cached.first() {
            prop_assert_eq!(*i, 0);
            prop_assert!(c.is_usable());
            prop_assert_eq!(r.affinity, AffinityUse::Hit);
        } else {
            prop_assert!(r.affinity != AffinityUse::Hit);
        }
        if fixed || t.is_none() {
            prop_assert_eq!(r.affinity, AffinityUse::Miss);
        }

        // Sorted by the mode's key, apart from the promoted affinity hit.
        let rest = if cached.is_empty() { &r.candidates[..] } else { &r.candidates[1..] };
        let keys: Vec<_> = rest
            .iter()
            .map(|c| order::sort_key(g.catalog.settings.priority_mode, &c.provider, c.key(), &client, converted(c)))
            .collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));

        // A hit is never worse than a usable candidate; a drop always has a better one.
        let target_key = r.candidates.iter().find(|c| {
            t.as_ref().is_some_and(|t| c.key().id == t.provider_key_id)
        });
        if let (Some(tc), AffinityUse::Hit | AffinityUse::Dropped) = (target_key, r.affinity) {
            let mode = g.catalog.settings.priority_mode;
            let tk = order::sort_key(mode, &tc.provider, tc.key(), &client, converted(tc));
            let better = r.candidates.iter().any(|c| {
                c.is_usable() && order::sort_key(mode, &c.provider, c.key(), &client, converted(c)).beats(&tk)
            });
            prop_assert_eq!(better, r.affinity == AffinityUse::Dropped);
        }
    }

    #[test]
    fn beats_implies_sorting_first(
        a in (0..3i32, 0..3usize, 0..3i32, 0..3i32),
        b in (0..3i32, 0..3usize, 0..3i32, 0..3i32),
        global_mode in any::<bool>(),
        converted in any::<(bool, bool)>(),
    ) {
        let names = ["x", "y", "z"];
        let mode = if global_mode { PriorityMode::GlobalKey } else { PriorityMode::Provider };
        let make = |(pp, name, ip, gp): (i32, usize, i32, i32), id: &str| {
            (provider(names[name], pp, vec![]), key_with(id, Some(ip), Some(gp)))
        };
        let (pa, ka) = make(a, "ka");
        let (pb, kb) = make(b, "kb");
        let sa = order::sort_key(mode, &pa, &ka, "client", converted.0);
        let sb = order::sort_key(mode, &pb, &kb, "client", converted.1);
        if sa.beats(&sb) {
            prop_assert!(sa < sb);
        }
    }
}

/// Whether a Claude client's candidate needs conversion.
fn converted(candidate: &Candidate) -> bool {
    !candidate
        .endpoint()
        .api_format
        .same_payloads(ApiFormat::Claude)
}

fn converting(mut provider: Provider, allowed: Option<bool>) -> Provider {
    for endpoint in &mut provider.endpoints {
        endpoint.format_conversion = allowed;
    }
    provider
}

#[test]
fn foreign_endpoints_serve_only_when_conversion_is_allowed_and_after_native_ones() {
    let providers = || {
        vec![
            // Best priority, but speaks OpenAI chat only.
            provider_with("openai", 1, &[ApiFormat::OpenAi], vec![key("k-openai")]),
            // A Claude Code endpoint serves a Claude client natively (same payloads).
            provider_with("cli", 50, &[ApiFormat::ClaudeCli], vec![key("k-cli")]),
            provider("claude", 90, vec![key("k-claude")]),
        ]
    };
    // Off by default: the foreign endpoint is no candidate at all.
    let off = catalog(providers());
    assert_eq!(key_ids(&run(&off, &Req::new())), vec!["k-cli", "k-claude"]);

    // Allowed globally: it serves, after every native candidate despite its priority.
    let settings = RoutingSettings {
        format_conversion: true,
        ..RoutingSettings::default()
    };
    let on = catalog_with(providers(), settings);
    let resolution = run(&on, &Req::new());
    assert_eq!(key_ids(&resolution), vec!["k-cli", "k-claude", "k-openai"]);
    assert_eq!(
        resolution.candidates[2].endpoint().api_format,
        ApiFormat::OpenAi
    );

    // The endpoint's own flag overrides the global setting, both ways.
    let mut own = providers();
    let first = own.remove(0);
    own.insert(0, converting(first, Some(true)));
    let own = catalog(own);
    assert_eq!(
        key_ids(&run(&own, &Req::new())),
        vec!["k-cli", "k-claude", "k-openai"]
    );
    let mut refused = providers();
    let first = refused.remove(0);
    refused.insert(0, converting(first, Some(false)));
    let refused = catalog_with(refused, settings);
    assert_eq!(
        key_ids(&run(&refused, &Req::new())),
        vec!["k-cli", "k-claude"]
    );
}

#[test]
fn a_native_candidate_usable_again_takes_affinity_back_from_a_converted_one() {
    let settings = RoutingSettings {
        format_conversion: true,
        ..RoutingSettings::default()
    };
    let catalog = catalog_with(
        vec![
            provider_with("openai", 1, &[ApiFormat::OpenAi], vec![key("k-openai")]),
            provider("claude", 90, vec![key("k-claude")]),
        ],
        settings,
    );
    let on_converted = AffinityTarget {
        provider_id: "p-openai".into(),
        endpoint_id: "e-openai-OPENAI".into(),
        provider_key_id: "k-openai".into(),
    };
    let resolution = run_with(&catalog, &Req::new(), &View::default(), Some(&on_converted));
    assert_eq!(resolution.affinity, AffinityUse::Dropped);
    assert_eq!(key_ids(&resolution), vec!["k-claude", "k-openai"]);
}

#[test]
fn visible_models_follow_model_and_provider_restrictions() {
    let mut other = global_model();
    other.id = "g-haiku".into();
    other.name = "claude-haiku".into();
    let mut unserved = global_model();
    unserved.id = "g-opus".into();
    unserved.name = "claude-opus".into();
    let mut haiku_provider = provider("haiku-host", 1, vec![key("k-h")]);
    haiku_provider.models = [("g-haiku".to_owned(), provider_model("haiku"))]
        .into_iter()
        .collect();
    let catalog = Catalog::build(
        1,
        CatalogParts {
            providers: vec![provider("claude", 1, vec![key("k-c")]), haiku_provider],
            global_models: vec![global_model(), other, unserved],
            ..CatalogParts::default()
        },
    );
    let names = |key: &GatewayKey, user: &User| -> Vec<String> {
        visible_models(&catalog, key, user)
            .iter()
            .map(|m| m.name.clone())
            .collect()
    };
    // Sorted; a model no provider implements is not listed.
    assert_eq!(
        names(&gateway_key(), &user()),
        ["claude-haiku", "claude-sonnet"]
    );
    let mut only_sonnet = gateway_key();
    only_sonnet.allowed_models = Some(vec![MODEL.into()]);
    assert_eq!(names(&only_sonnet, &user()), [MODEL]);
    let mut no_haiku_host = user();
    no_haiku_host.allowed_providers = Some(vec!["claude".into()]);
    assert_eq!(names(&gateway_key(), &no_haiku_host), [MODEL]);
}
