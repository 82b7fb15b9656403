//! Configuration: the embedded defaults, then the `--config` file, then `SWITCHYARD__…`
//! environment variables; parsed with field paths in every error, then validated once into
//! [`Config`], the type the rest of the program sees.
//!
//! Environment values are typed after the default at the same path (a number stays a number),
//! so `SWITCHYARD__SERVER__WORKERS=4` works and `SWITCHYARD__SERVER__WORKRS=4` is an error that
//! names the variable.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use switchyard_core::SecretString;

/// The defaults, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Prefix of environment overrides; `__` separates path segments.
pub const ENV_PREFIX: &str = "SWITCHYARD__";

/// A configuration error: where and what.
#[derive(Debug, thiserror::Error)]
#[error("configuration error at `{path}`{source_hint}: {message}")]
pub struct ConfigError {
    /// Dotted field path (`server.listen`), or the file.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// ` (from SWITCHYARD__…)` when an environment variable set the value.
    pub source_hint: String,
}

fn error(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
        source_hint: String::new(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    server: RawServer,
    database: RawDatabase,
    state: RawState,
    admin: RawAdmin,
    secrets: RawSecrets,
    catalog: RawCatalog,
    routing: RawRouting,
    affinity: RawAffinity,
    health: RawHealth,
    log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAffinity {
    session_header: String,
    chat: Vec<String>,
    responses: Vec<String>,
    messages: Vec<String>,
    gemini: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    window_size: usize,
    window_secs: u64,
    min_requests: usize,
    error_rate: f64,
    initial_recovery_secs: u64,
    max_recovery_secs: u64,
    half_open_probes: u32,
    half_open_successes: u32,
    half_open_failures: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    request_deadline_secs: u64,
    max_attempts: u32,
    retry_base_ms: u64,
    retry_max_ms: u64,
    rate_limit_wait_max_secs: u64,
    queue_timeout_secs: u64,
    queue_max_waiters: usize,
    default_cooldown_secs: u64,
    max_cooldown_secs: u64,
    stream_idle_timeout_secs: u64,
    connect_timeout_secs: u64,
    max_in_flight: usize,
    shards: usize,
    record_batch_rows: usize,
    record_flush_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    workers: usize,
    max_body_bytes: usize,
    shutdown_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
    max_connections: u32,
    connect_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    backend: StateBackend,
    redis_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    encryption_key: SecretString,
    key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    import: Vec<PathBuf>,
    refresh_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: LogFormat,
    level: String,
}

/// Where shared hot state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// In this process.
    Memory,
    /// In Redis, shared by every gateway using it.
    Redis,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// How provider keys are encrypted at rest.
#[derive(Debug, Clone)]
pub enum EncryptionKey {
    /// Given in the configuration (base64 of 32 bytes).
    Inline(SecretString),
    /// A key file, created when missing.
    File(PathBuf),
}

/// The validated configuration. Its `Debug` output redacts URL passwords; secrets are
/// `SecretString`s and print as `[redacted]`.
#[derive(Clone)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Graceful shutdown budget, seconds.
    pub shutdown_timeout_secs: u64,
    /// Database URL.
    pub database_url: String,
    /// Pool size.
    pub database_max_connections: u32,
    /// Connect timeout, seconds.
    pub database_connect_timeout_secs: u64,
    /// Shared state backend.
    pub state_backend: StateBackend,
    /// Redis URL (used when the backend is Redis).
    pub redis_url: String,
    /// The configured admin token, if any.
    pub admin_token: Option<SecretString>,
    /// Provider-key encryption.
    pub encryption_key: EncryptionKey,
    /// Files imported at start.
    pub import: Vec<PathBuf>,
    /// Catalog refresh period, seconds (0 = off).
    pub catalog_refresh_secs: u64,
    /// Request-path settings.
    pub routing: switchyard_actors::RoutingConfig,
    /// How each front door finds a client's session for cache affinity.
    pub affinity: switchyard_http::public::SessionAffinity,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("workers", &self.workers)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("database_url", &redact_url(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field(
                "database_connect_timeout_secs",
                &self.database_connect_timeout_secs,
            )
            .field("state_backend", &self.state_backend)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("admin_token", &self.admin_token)
            .field("encryption_key", &self.encryption_key)
            .field("import", &self.import)
            .field("catalog_refresh_secs", &self.catalog_refresh_secs)
            .field("routing", &self.routing)
            .field("affinity", &self.affinity)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .finish()
    }
}

/// A URL without its password, for messages and debug output.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Loads the configuration from the defaults, an optional file and the given environment.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let defaults: toml::Value =
        toml::from_str(DEFAULT_TOML).map_err(|e| error("embedded defaults", e.to_string()))?;
    let mut merged = defaults.clone();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error(path.display().to_string(), format!("cannot read: {e}")))?;
        let overlay: toml::Value = toml::from_str(&text).map_err(|e| {
            error(
                path.display().to_string(),
                format!("not valid TOML: {}", e.message()),
            )
        })?;
        merge(&mut merged, overlay);
    }
    let mut from_env: Vec<(String, String)> = Vec::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let path = segments.join(".");
        let Some(default) = lookup(&defaults, &segments) else {
            return Err(ConfigError {
                path,
                message: "no such setting".into(),
                source_hint: format!(" (from {name})"),
            });
        };
        let value = typed_like(default, &raw).map_err(|message| ConfigError {
            path: path.clone(),
            message,
            source_hint: format!(" (from {name})"),
        })?;
        set(&mut merged, &segments, value);
        from_env.push((path, name));
    }
    let hint = |path: &str| {
        from_env
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, name)| format!(" (from {name})"))
            .unwrap_or_default()
    };
    let raw: RawConfig = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        ConfigError {
            source_hint: hint(&path),
            message: e.into_inner().to_string(),
            path,
        }
    })?;
    validate(raw).map_err(|mut e| {
        e.source_hint = hint(&e.path);
        e
    })
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
        error(
            "server.listen",
            "must be an IP address and port, like 127.0.0.1:8787",
        )
    })?;
    if raw.server.max_body_bytes < 1024 {
        return Err(error("server.max_body_bytes", "must be at least 1024"));
    }
    let workers = match raw.server.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n if n > 1024 => return Err(error("server.workers", "must be at most 1024")),
        n => n,
    };
    let database_url = if raw.database.url.trim().is_empty() {
        format!(
            "sqlite://{}?mode=rwc",
            raw.data_dir.join("switchyard.db").display()
        )
    } else {
        let url = raw.database.url.trim().to_owned();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(error(
                "database.url",
                "must start with sqlite: or postgres://",
            ));
        }
        url
    };
    if raw.database.max_connections == 0 {
        return Err(error("database.max_connections", "must be at least 1"));
    }
    if raw.state.backend == StateBackend::Redis && !raw.state.redis_url.starts_with("redis") {
        return Err(error(
            "state.redis_url",
            "must be a redis:// or rediss:// URL",
        ));
    }
    let encryption_key = if raw.secrets.encryption_key.is_blank() {
        let file = if raw.secrets.key_file.trim().is_empty() {
            raw.data_dir.join("secret.key")
        } else {
            PathBuf::from(raw.secrets.key_file.trim())
        };
        EncryptionKey::File(file)
    } else {
        switchyard_store::Cipher::from_base64(&raw.secrets.encryption_key)
            .map_err(|m| error("secrets.encryption_key", m))?;
        EncryptionKey::Inline(raw.secrets.encryption_key)
    };
    let affinity = validate_affinity(&raw.affinity)?;
    let mut routing = validate_routing(&raw.routing)?;
    routing.breaker = validate_health(&raw.health)?;
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        return Err(error(
            "log.level",
            "not a valid filter such as `info` or `switchyard=debug`",
        ));
    }
    Ok(Config {
        data_dir: raw.data_dir,
        listen,
        workers,
        max_body_bytes: raw.server.max_body_bytes,
        shutdown_timeout_secs: raw.server.shutdown_timeout_secs,
        database_url,
        database_max_connections: raw.database.max_connections,
        database_connect_timeout_secs: raw.database.connect_timeout_secs.max(1),
        state_backend: raw.state.backend,
        redis_url: raw.state.redis_url,
        admin_token: (!raw.admin.token.is_blank()).then_some(raw.admin.token),
        encryption_key,
        import: raw.catalog.import,
        catalog_refresh_secs: raw.catalog.refresh_secs,
        routing,
        affinity,
        log_format: raw.log.format,
        log_level: raw.log.level,
    })
}

fn validate_affinity(
    a: &RawAffinity,
) -> Result<switchyard_http::public::SessionAffinity, ConfigError> {
    use switchyard_http::public::SessionRule;
    let rules = |route: &str, names: &[String]| {
        names
            .iter()
            .map(|name| {
                SessionRule::parse(name.trim()).ok_or_else(|| {
                    error(
                        format!("affinity.{route}"),
                        format!(
                            "unknown rule `{name}`; expected header, prompt_cache_key, \
                             previous_response_id or metadata_user_id"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let header = a.session_header.trim().to_ascii_lowercase();
    if !header.is_empty()
        && actix_web::http::header::HeaderName::from_bytes(header.as_bytes()).is_err()
    {
        return Err(error("affinity.session_header", "not a valid header name"));
    }
    Ok(switchyard_http::public::SessionAffinity {
        header: (!header.is_empty()).then_some(header),
        chat: rules("chat", &a.chat)?,
        responses: rules("responses", &a.responses)?,
        messages: rules("messages", &a.messages)?,
        gemini: rules("gemini", &a.gemini)?,
    })
}

fn validate_routing(r: &RawRouting) -> Result<switchyard_actors::RoutingConfig, ConfigError> {
    use std::time::Duration;
    let positive = |path: &str, v: u64| {
        if v == 0 {
            Err(error(format!("routing.{path}"), "must be greater than 0"))
        } else {
            Ok(v)
        }
    };
    if r.max_attempts == 0 {
        return Err(error("routing.max_attempts", "must be at least 1"));
    }
    if r.retry_base_ms > r.retry_max_ms {
        return Err(error(
            "routing.retry_base_ms",
            "must not exceed routing.retry_max_ms",
        ));
    }
    if !(1..=64).contains(&r.shards) {
        return Err(error("routing.shards", "must be between 1 and 64"));
    }
    if r.max_in_flight == 0 {
        return Err(error("routing.max_in_flight", "must be at least 1"));
    }
    if r.record_batch_rows == 0 {
        return Err(error("routing.record_batch_rows", "must be at least 1"));
    }
    Ok(switchyard_actors::RoutingConfig {
        request_deadline: Duration::from_secs(positive(
            "request_deadline_secs",
            r.request_deadline_secs,
        )?),
        max_attempts: r.max_attempts,
        retry_base: Duration::from_millis(r.retry_base_ms),
        retry_max: Duration::from_millis(r.retry_max_ms),
        rate_limit_wait_max: Duration::from_secs(r.rate_limit_wait_max_secs),
        queue_timeout: Duration::from_secs(r.queue_timeout_secs),
        queue_max_waiters: r.queue_max_waiters,
        default_cooldown: Duration::from_secs(r.default_cooldown_secs),
        max_cooldown: Duration::from_secs(positive("max_cooldown_secs", r.max_cooldown_secs)?),
        stream_idle_timeout: Duration::from_secs(positive(
            "stream_idle_timeout_secs",
            r.stream_idle_timeout_secs,
        )?),
        connect_timeout: Duration::from_secs(positive(
            "connect_timeout_secs",
            r.connect_timeout_secs,
        )?),
        max_in_flight: r.max_in_flight,
        shards: r.shards,
        record_batch: r.record_batch_rows,
        record_flush: Duration::from_millis(positive("record_flush_ms", r.record_flush_ms)?),
        ..switchyard_actors::RoutingConfig::default()
    })
}

fn validate_health(h: &RawHealth) -> Result<switchyard_core::breaker::BreakerConfig, ConfigError> {
    use std::time::Duration;
    let at_least_one = |path: &str, v: u64| {
        if v == 0 {
            Err(error(format!("health.{path}"), "must be at least 1"))
        } else {
            Ok(())
        }
    };
    at_least_one("window_size", h.window_size as u64)?;
    at_least_one("window_secs", h.window_secs)?;
    at_least_one("min_requests", h.min_requests as u64)?;
    at_least_one("initial_recovery_secs", h.initial_recovery_secs)?;
    at_least_one("half_open_probes", u64::from(h.half_open_probes))?;
    at_least_one("half_open_successes", u64::from(h.half_open_successes))?;
    at_least_one("half_open_failures", u64::from(h.half_open_failures))?;
    if h.min_requests > h.window_size {
        return Err(error(
            "health.min_requests",
            "must not exceed health.window_size (the circuit could never open)",
        ));
    }
    if !(h.error_rate > 0.0 && h.error_rate <= 1.0) {
        return Err(error(
            "health.error_rate",
            "must be greater than 0 and at most 1",
        ));
    }
    if h.max_recovery_secs < h.initial_recovery_secs {
        return Err(error(
            "health.max_recovery_secs",
            "must not be less than health.initial_recovery_secs",
        ));
    }
    Ok(switchyard_core::breaker::BreakerConfig {
        window_size: h.window_size,
        window: Duration::from_secs(h.window_secs),
        min_requests: h.min_requests,
        error_rate: h.error_rate,
        initial_recovery: Duration::from_secs(h.initial_recovery_secs),
        max_recovery: Duration::from_secs(h.max_recovery_secs),
        half_open_probes: h.half_open_probes,
        half_open_successes: h.half_open_successes,
        half_open_failures: h.half_open_failures,
    })
}

/// Deep-merges tables; anything else in `overlay` replaces.
fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base), toml::Value::Table(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn lookup<'v>(value: &'v toml::Value, path: &[String]) -> Option<&'v toml::Value> {
    path.iter().try_fold(value, |v, key| v.as_table()?.get(key))
}

fn set(value: &mut toml::Value, path: &[String], new: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = value;
    for key in parents {
        let Some(next) = cursor.as_table_mut().and_then(|t| t.get_mut(key)) else {
            return;
        };
        cursor = next;
    }
    if let Some(table) = cursor.as_table_mut() {
        table.insert(last.clone(), new);
    }
}

/// Parses an environment value as the same TOML type as the default at that path.
fn typed_like(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    match default {
        toml::Value::String(_) => Ok(toml::Value::String(raw.to_owned())),
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("`{raw}` is not an integer")),
        toml::Value::Float(_) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("`{raw}` is not a number")),
        toml::Value::Boolean(_) => raw
            .trim()
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| format!("`{raw}` is not true or false")),
        toml::Value::Array(_) => {
            // A TOML array (`["a.toml", "b.toml"]`) or a comma-separated list.
            let wrapped = format!("v = {raw}");
            match toml::from_str::<toml::Table>(&wrapped) {
                Ok(mut t) => t.remove("v").ok_or_else(|| "empty value".to_owned()),
                Err(_) => Ok(toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                )),
            }
        }
        _ => Err("cannot be set from the environment".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn defaults_need_no_service() {
        let config = load(None, env(&[])).expect("defaults are valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8787");
        assert!(config.database_url.starts_with("sqlite://"));
        assert_eq!(config.state_backend, StateBackend::Memory);
        assert!(config.admin_token.is_none());
        assert!(matches!(config.encryption_key, EncryptionKey::File(_)));
        assert_eq!(
            config.routing.breaker,
            switchyard_core::breaker::BreakerConfig::default(),
            "the [health] defaults are the breaker's"
        );
    }

    #[test]
    fn health_section_sets_the_breaker() {
        let config = load(
            None,
            env(&[
                ("SWITCHYARD__HEALTH__INITIAL_RECOVERY_SECS", "1"),
                ("SWITCHYARD__HEALTH__MAX_RECOVERY_SECS", "2"),
                ("SWITCHYARD__HEALTH__MIN_REQUESTS", "3"),
                ("SWITCHYARD__HEALTH__HALF_OPEN_PROBES", "1"),
            ]),
        )
        .expect("valid");
        let breaker = &config.routing.breaker;
        assert_eq!(breaker.initial_recovery, std::time::Duration::from_secs(1));
        assert_eq!(breaker.max_recovery, std::time::Duration::from_secs(2));
        assert_eq!((breaker.min_requests, breaker.half_open_probes), (3, 1));
        let e = load(
            None,
            env(&[("SWITCHYARD__HEALTH__MAX_RECOVERY_SECS", "10")]),
        )
        .expect_err("max below initial");
        assert_eq!(e.path, "health.max_recovery_secs");
    }

    #[test]
    fn file_then_environment_override() {
        let f = file("[server]\nlisten = \"127.0.0.1:9000\"\nworkers = 3\n");
        let config = load(
            Some(f.path()),
            env(&[("SWITCHYARD__SERVER__WORKERS", "5"), ("OTHER", "x")]),
        )
        .expect("valid");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.workers, 5);
    }

    #[test]
    fn unknown_field_names_its_path() {
        let f = file("[server]\nlisen = \"127.0.0.1:9000\"\n");
        let e = load(Some(f.path()), env(&[])).expect_err("unknown field");
        assert_eq!(e.path, "server.lisen");
        assert!(e.message.contains("lisen"), "{e}");
    }

    #[test]
    fn invalid_values_name_their_path_and_variable() {
        let f = file("[log]\nformat = \"xml\"\n");
        let e = load(Some(f.path()), env(&[])).expect_err("bad enum");
        assert_eq!(e.path, "log.format");

        let e = load(
            None,
            env(&[("SWITCHYARD__SERVER__LISTEN", "not-an-address")]),
        )
        .expect_err("bad address");
        assert_eq!(e.path, "server.listen");
        assert!(e.to_string().contains("SWITCHYARD__SERVER__LISTEN"), "{e}");

        let e = load(None, env(&[("SWITCHYARD__SERVER__WORKERS", "many")])).expect_err("type");
        assert_eq!(e.path, "server.workers");

        let e = load(None, env(&[("SWITCHYARD__SERVR__WORKERS", "1")])).expect_err("unknown var");
        assert_eq!(e.path, "servr.workers");

        let with_password = load(
            None,
            env(&[(
                "SWITCHYARD__DATABASE__URL",
                "postgres://sy:hunter2@db:5432/sy",
            )]),
        )
        .expect("valid");
        assert!(!format!("{with_password:?}").contains("hunter2"));

        let e = load(None, env(&[("SWITCHYARD__HEALTH__ERROR_RATE", "1.5")])).expect_err("rate");
        assert_eq!(e.path, "health.error_rate");
        let e =
            load(None, env(&[("SWITCHYARD__HEALTH__HALF_OPEN_PROBES", "0")])).expect_err("probes");
        assert_eq!(e.path, "health.half_open_probes");

        let e = load(
            None,
            env(&[("SWITCHYARD__SECRETS__ENCRYPTION_KEY", "short")]),
        )
        .expect_err("bad key");
        assert_eq!(e.path, "secrets.encryption_key");
        assert!(
            !e.to_string().contains("short"),
            "the secret is echoed: {e}"
        );
    }
}
