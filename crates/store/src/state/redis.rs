//! The Redis backend, for several gateway processes sharing one Redis (pooled through
//! deadpool-redis).
//!
//! Keys, all under the configured prefix `P`:
//! - `P lease:key:{key_id}` and `P lease:ep:{endpoint_id}`: sorted sets of live leases, score =
//!   expiry in Redis-server milliseconds. The member names the *other* side of the lease
//!   (`{endpoint_id}\x1f{lease_id}` in a key's set, `{key_id}\x1f{lease_id}` in an endpoint's),
//!   so resetting one key can free its leases on their endpoints too. Every change to them runs
//!   in one Lua script, reading the server clock with `TIME`, so it is atomic and gateways with
//!   skewed clocks agree on expiry. The sets themselves expire after their longest lease.
//! - `P rpm:{key_id}`: sorted set of admitted request ids, score = caller time in milliseconds.
//! - `P cool`: one hash, key id → cool-down end in milliseconds (one `HGETALL` lists them all;
//!   ended ones are deleted when listed).
//! - `P affinity:{affinity_key}:{api_format}:{global_model_id}`: a hash with `PX` expiry — the
//!   target (`p`, `d`, `y`: provider, endpoint, provider key), `c` created and `e` expires (fixed
//!   width RFC 3339 with nanoseconds, so they compare as strings), `n` the request count, `k` the
//!   affinity key as JSON (for admin lists). Components of the name are escaped (`%` → `%25`,
//!   `:` → `%3A`) so it is unambiguous and one client's entries are exactly the keys matching
//!   `P affinity:{affinity_key}:*`.
//!
//! Affinity updates are one script each, atomic in Redis: a success on the same live target
//! counts one more request and pushes the expiry (`HINCRBY`), anything else starts a new entry;
//! an invalidation deletes only if the entry still points at the failed target. Many requests of
//! one client finishing at once (a coding agent's parallel calls) therefore never race — a
//! read-compare-and-set loop on one hot key did, and mostly gave up. The sliding rule is the one
//! of [`AffinityEntry::next`], which the memory backend runs; the shared state tests hold both to
//! it. Admin walks use `SCAN`, never `KEYS`.
//!
//! The lease scripts compute endpoint key names from a key's members, so this backend assumes a
//! single Redis (not Redis Cluster, where keys must be declared up front).

use super::{
    AffinityEntry, AffinityKey, AffinityTargetIds, LeaseOutcome, LeaseRequest, MEMBER_SEPARATOR,
    RPM_WINDOW, RpmOutcome, StateError, count_u32, from_millis, to_millis, ttl_millis,
};
use arc_swap::ArcSwapOption;
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, FromRedisValue, Script};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

const BACKEND: &str = "redis";

/// How long the cool-down hash outlives its latest cool-down (clock-skew margin).
const COOLDOWN_HASH_SLACK: Duration = Duration::from_secs(300);

/// Keys fetched per `SCAN` step in admin walks.
const SCAN_COUNT: usize = 500;

/// Pool bounds: a dead or stalled Redis must fail fast (the caller falls back to local state),
/// not queue requests. redis-rs itself bounds a response to 500 ms and a connect to 1 s.
const POOL_SIZE: usize = 16;
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the shared connection is used before the pool checks it again: a dead one fails
/// operations for at most this long (they fall back to local state meanwhile).
const SHARED_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The shared connection and when the pool last vouched for it.
struct SharedConnection {
    conn: MultiplexedConnection,
    checked: Instant,
}

/// Takes a lease on a key and its endpoint, all or nothing.
/// KEYS: key set, endpoint set. ARGV: key-set member, endpoint-set member, key limit,
/// endpoint limit (-1 = none), ttl ms. Returns {0 granted | 1 key full | 2 endpoint full,
/// key count, endpoint count}.
const ACQUIRE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local kc = redis.call('ZCARD', KEYS[1])
local ec = redis.call('ZCARD', KEYS[2])
local klimit = tonumber(ARGV[3])
local elimit = tonumber(ARGV[4])
if elimit >= 0 and ec >= elimit then return {2, kc, ec} end
if klimit >= 0 and kc >= klimit then return {1, kc, ec} end
local ttl = tonumber(ARGV[5])
local exp = string.format('%d', now + ttl)
redis.call('ZADD', KEYS[1], exp, ARGV[1])
redis.call('ZADD', KEYS[2], exp, ARGV[2])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return {0, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
";

/// Pushes a live lease's expiry. Same KEYS and members as ACQUIRE; ARGV[3] = ttl ms.
/// Returns 1 if renewed, 0 if the lease was gone or expired.
const RENEW_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not s) or tonumber(s) <= now then return 0 end
local ttl = tonumber(ARGV[3])
local exp = string.format('%d', now + ttl)
redis.call('ZADD', KEYS[1], exp, ARGV[1])
redis.call('ZADD', KEYS[2], exp, ARGV[2])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
";

/// Live leases of one set, by the server clock.
const COUNT_LIVE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now), '+inf')
";

/// Drops every lease of one key, from its endpoints' sets too.
/// KEYS[1] = key set. ARGV: endpoint-set name prefix, key id.
const RESET_KEY_LUA: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, m in ipairs(members) do
  local i = string.find(m, '\31', 1, true)
  if i then
    local ep = string.sub(m, 1, i - 1)
    local lease = string.sub(m, i + 1)
    redis.call('ZREM', ARGV[1] .. ep, ARGV[2] .. '\31' .. lease)
  end
end
redis.call('DEL', KEYS[1])
return #members
";

/// Sliding-window admission. KEYS[1] = window. ARGV: request id, now ms, limit, window ms.
/// Returns {1, 0} admitted or {0, retry_at ms}.
const RPM_LUA: &str = r"
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {1, 0} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if oldest[2] then return {0, tonumber(oldest[2]) + window} end
  return {0, now + window}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
";

/// Keeps the later cool-down. KEYS[1] = hash. ARGV: key id, until ms, slack ms.
/// The hash expires a little after its latest cool-down ends (every field has ended by then),
/// so an abandoned prefix does not keep it forever; the slack covers clock skew between the
/// caller, whose `until` this is, and the server.
const SET_COOLDOWN_LUA: &str = r"
local ends = tonumber(ARGV[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < ends then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = ends - now + tonumber(ARGV[3])
-- PTTL is -1 for a hash without expiry, which this also replaces.
if keep > 0 and redis.call('PTTL', KEYS[1]) < keep then
  redis.call('PEXPIRE', KEYS[1], string.format('%d', keep))
end
return 0
";

/// Lists live cool-downs and deletes ended ones. KEYS[1] = hash. ARGV[1] = now ms.
const COOLDOWNS_LUA: &str = r"
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) > now then
    table.insert(live, all[i])
    table.insert(live, all[i + 1])
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
";

/// Records a success of a target (the sliding rule of [`AffinityEntry::next`]). KEYS[1] = entry.
/// ARGV: provider, endpoint, provider key, now, expires (both fixed-width RFC 3339), px, key
/// JSON. The same target still live (by the caller's clock) counts one more request and keeps
/// `c`; anything else (another target, lapsed, absent, not a hash) starts afresh.
/// Returns {request count, created}.
const AFFINITY_TOUCH_LUA: &str = r"
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local cur = redis.call('HMGET', KEYS[1], 'p', 'd', 'y', 'e', 'c')
  if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] and cur[4] and cur[5]
     and cur[4] > ARGV[4] then
    local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
    redis.call('HSET', KEYS[1], 'e', ARGV[5])
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
    return {n, cur[5]}
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'd', ARGV[2], 'y', ARGV[3], 'c', ARGV[4],
  'e', ARGV[5], 'n', 1, 'k', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, ARGV[4]}
";

/// Deletes the entry only if it still points at this endpoint and provider key.
/// KEYS[1] = entry. ARGV: endpoint, provider key. Returns 1 if deleted.
const AFFINITY_DROP_LUA: &str = r"
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local cur = redis.call('HMGET', KEYS[1], 'd', 'y')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0
";

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE_LUA));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW_LUA));
static COUNT_LIVE: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT_LIVE_LUA));
static RESET_KEY: LazyLock<Script> = LazyLock::new(|| Script::new(RESET_KEY_LUA));
static RPM: LazyLock<Script> = LazyLock::new(|| Script::new(RPM_LUA));
static SET_COOLDOWN: LazyLock<Script> = LazyLock::new(|| Script::new(SET_COOLDOWN_LUA));
static COOLDOWNS: LazyLock<Script> = LazyLock::new(|| Script::new(COOLDOWNS_LUA));
static AFFINITY_TOUCH: LazyLock<Script> = LazyLock::new(|| Script::new(AFFINITY_TOUCH_LUA));
static AFFINITY_DROP: LazyLock<Script> = LazyLock::new(|| Script::new(AFFINITY_DROP_LUA));

/// Shared hot state in Redis. Clones share the pool.
#[derive(Clone)]
pub struct RedisState {
    pool: Pool,
    /// A multiplexed connection every operation shares, re-checked through the pool at most
    /// once per [`SHARED_CHECK_EVERY`]: deadpool's recycle check (`UNWATCH` + `PING`) on every
    /// checkout doubled the round trips of each operation. Sharing is safe because every
    /// command here is one command, one script or one atomic pipeline (compare-and-set is done
    /// in Lua, never with `WATCH`), which a multiplexed connection interleaves correctly.
    shared: Arc<ArcSwapOption<SharedConnection>>,
    prefix: Arc<str>,
    /// The URL with any password replaced, for `Debug` and errors.
    display_url: Arc<str>,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's own Debug would print the connection info, password included.
        f.debug_struct("RedisState")
            .field("url", &self.display_url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The fields of an affinity hash, in the order [`AffinityFields::parse`] reads them.
const AFFINITY_FIELDS: [&str; 7] = ["p", "d", "y", "c", "e", "n", "k"];

/// An affinity hash as read with `HMGET` of [`AFFINITY_FIELDS`].
struct AffinityFields(Vec<Option<String>>);

impl AffinityFields {
    /// The entry and its key, or `None` when the hash is absent or incomplete (written by
    /// another version, or damaged: the next success replaces it).
    fn parse(self, name: &str) -> Option<(AffinityKey, AffinityEntry)> {
        let mut fields = self.0.into_iter();
        let mut next = || fields.next().flatten();
        let (p, d, y, c, e, n, k) = (next(), next(), next(), next(), next(), next(), next());
        if p.is_none() && k.is_none() {
            return None;
        }
        let parsed = (|| {
            let key: AffinityKey = serde_json::from_str(&k?).ok()?;
            let entry = AffinityEntry {
                provider_id: p?,
                endpoint_id: d?,
                provider_key_id: y?,
                created_at: parse_stamp(&c?)?,
                expires_at: parse_stamp(&e?)?,
                request_count: n?.parse().ok()?,
            };
            Some((key, entry))
        })();
        if parsed.is_none() {
            tracing::warn!(
                key = name,
                "unreadable affinity entry in Redis; treated as absent"
            );
        }
        parsed
    }
}

impl RedisState {
    pub(super) async fn connect(url: &str, key_prefix: &str) -> Result<Self, StateError> {
        let display_url = redact_url(url);
        let secrets = url_passwords(url);
        // Whatever a parse or connect error prints, it must not carry the password.
        let scrub = |reason: String| {
            secrets.iter().fold(reason, |reason, secret| {
                reason.replace(secret.as_str(), "***")
            })
        };
        let mut config = Config::from_url(url);
        let mut pool_config = PoolConfig::new(POOL_SIZE);
        pool_config.timeouts = Timeouts {
            wait: Some(POOL_TIMEOUT),
            create: Some(POOL_TIMEOUT),
            recycle: Some(POOL_TIMEOUT),
        };
        config.pool = Some(pool_config);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| StateError::Backend {
                backend: BACKEND,
                operation: "connect",
                reason: scrub(format!("{display_url}: {e}")),
            })?;
        let state = Self {
            pool,
            shared: Arc::new(ArcSwapOption::empty()),
            prefix: Arc::from(key_prefix),
            display_url: Arc::from(display_url.as_str()),
        };
        let ping = match state.pool.get().await {
            Ok(mut conn) => redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match ping {
            Ok(_) => Ok(state),
            Err(reason) => Err(StateError::Backend {
                backend: BACKEND,
                operation: "connect",
                reason: scrub(format!("{display_url}: {reason}")),
            }),
        }
    }

    async fn conn(&self, operation: &'static str) -> Result<MultiplexedConnection, StateError> {
        if let Some(shared) = self.shared.load().as_ref()
            && shared.checked.elapsed() < SHARED_CHECK_EVERY
        {
            return Ok(shared.conn.clone());
        }
        match self.pool.get().await {
            Ok(pooled) => {
                let conn = MultiplexedConnection::clone(&pooled);
                self.shared.store(Some(Arc::new(SharedConnection {
                    conn: conn.clone(),
                    checked: Instant::now(),
                })));
                Ok(conn)
            }
            Err(e) => {
                self.shared.store(None);
                Err(fail(operation, e))
            }
        }
    }

    /// Runs one script with string keys and arguments on a pooled connection.
    async fn eval<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, StateError> {
        let mut conn = self.conn(operation).await?;
        eval_on(&mut conn, operation, script, keys, args).await
    }

    fn key_set(&self, key_id: &str) -> String {
        format!("{}lease:key:{key_id}", self.prefix)
    }

    fn endpoint_prefix(&self) -> String {
        format!("{}lease:ep:", self.prefix)
    }

    fn endpoint_set(&self, endpoint_id: &str) -> String {
        format!("{}{endpoint_id}", self.endpoint_prefix())
    }

    fn rpm_key(&self, key_id: &str) -> String {
        format!("{}rpm:{key_id}", self.prefix)
    }

    fn cooldown_key(&self) -> String {
        format!("{}cool", self.prefix)
    }

    fn affinity_name(&self, k: &AffinityKey) -> String {
        format!(
            "{}affinity:{}:{}:{}",
            self.prefix,
            escape_component(&k.affinity_key),
            escape_component(&k.api_format),
            escape_component(&k.global_model_id)
        )
    }

    pub(super) async fn acquire(&self, req: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
        let (key_member, endpoint_member) = members(req);
        let (code, key_count, endpoint_count): (i64, i64, i64) = self
            .eval(
                "acquire",
                &ACQUIRE,
                &[
                    &self.key_set(&req.key_id),
                    &self.endpoint_set(&req.endpoint_id),
                ],
                &[
                    &key_member,
                    &endpoint_member,
                    &limit_arg(req.key_limit),
                    &limit_arg(req.endpoint_limit),
                    &ttl_millis(req.ttl).to_string(),
                ],
            )
            .await?;
        let (key_count, endpoint_count) = (to_count(key_count), to_count(endpoint_count));
        Ok(match code {
            0 => LeaseOutcome::Granted {
                key_in_flight: key_count,
                endpoint_in_flight: endpoint_count,
            },
            1 => LeaseOutcome::KeyFull {
                in_flight: key_count,
            },
            _ => LeaseOutcome::EndpointFull {
                in_flight: endpoint_count,
            },
        })
    }

    pub(super) async fn release(
        &self,
        key_id: &str,
        endpoint_id: &str,
        lease_id: &str,
    ) -> Result<(), StateError> {
        let mut conn = self.conn("release").await?;
        redis::pipe()
            .atomic()
            .zrem(self.key_set(key_id), join(endpoint_id, lease_id))
            .ignore()
            .zrem(self.endpoint_set(endpoint_id), join(key_id, lease_id))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| fail("release", e))
    }

    pub(super) async fn renew(
        &self,
        key_id: &str,
        endpoint_id: &str,
        lease_id: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let renewed: i64 = self
            .eval(
                "renew",
                &RENEW,
                &[&self.key_set(key_id), &self.endpoint_set(endpoint_id)],
                &[
                    &join(endpoint_id, lease_id),
                    &join(key_id, lease_id),
                    &ttl_millis(ttl).to_string(),
                ],
            )
            .await?;
        Ok(renewed == 1)
    }

    pub(super) async fn in_flight(&self, key_id: &str) -> Result<u32, StateError> {
        let n: i64 = self
            .eval("in_flight", &COUNT_LIVE, &[&self.key_set(key_id)], &[])
            .await?;
        Ok(to_count(n))
    }

    pub(super) async fn endpoint_in_flight(&self, endpoint_id: &str) -> Result<u32, StateError> {
        let n: i64 = self
            .eval(
                "endpoint_in_flight",
                &COUNT_LIVE,
                &[&self.endpoint_set(endpoint_id)],
                &[],
            )
            .await?;
        Ok(to_count(n))
    }

    pub(super) async fn reset_leases(&self, key_id: Option<&str>) -> Result<(), StateError> {
        match key_id {
            Some(key_id) => {
                let _: i64 = self
                    .eval(
                        "reset_leases",
                        &RESET_KEY,
                        &[&self.key_set(key_id)],
                        &[&self.endpoint_prefix(), key_id],
                    )
                    .await?;
            }
            None => {
                let pattern = format!("{}lease:*", glob_escape(&self.prefix));
                self.delete_matching("reset_leases", &pattern).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn rpm_admit(
        &self,
        key_id: &str,
        limit: u32,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<RpmOutcome, StateError> {
        let (admitted, retry_at): (i64, i64) = self
            .eval(
                "rpm_admit",
                &RPM,
                &[&self.rpm_key(key_id)],
                &[
                    request_id,
                    &to_millis(now).to_string(),
                    &limit.to_string(),
                    &ttl_millis(RPM_WINDOW).to_string(),
                ],
            )
            .await?;
        Ok(if admitted == 1 {
            RpmOutcome::Admitted
        } else {
            RpmOutcome::Full {
                retry_at: from_millis(retry_at),
            }
        })
    }

    pub(super) async fn set_cooldown(
        &self,
        key_id: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let _: i64 = self
            .eval(
                "set_cooldown",
                &SET_COOLDOWN,
                &[&self.cooldown_key()],
                &[
                    key_id,
                    &to_millis(until).to_string(),
                    &ttl_millis(COOLDOWN_HASH_SLACK).to_string(),
                ],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn cooldowns(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StateError> {
        let flat: Vec<String> = self
            .eval(
                "cooldowns",
                &COOLDOWNS,
                &[&self.cooldown_key()],
                &[&to_millis(now).to_string()],
            )
            .await?;
        Ok(flat
            .chunks_exact(2)
            .filter_map(|pair| {
                let until = pair[1].parse::<i64>().ok()?;
                Some((pair[0].clone(), from_millis(until)))
            })
            .collect())
    }

    pub(super) async fn clear_cooldown(&self, key_id: &str) -> Result<(), StateError> {
        let mut conn = self.conn("clear_cooldown").await?;
        redis::cmd("HDEL")
            .arg(self.cooldown_key())
            .arg(key_id)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| fail("clear_cooldown", e))?;
        Ok(())
    }

    pub(super) async fn affinity_get(
        &self,
        k: &AffinityKey,
        now: DateTime<Utc>,
    ) -> Result<Option<AffinityEntry>, StateError> {
        let name = self.affinity_name(k);
        let mut conn = self.conn("affinity_get").await?;
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&name)
            .arg(&AFFINITY_FIELDS)
            .query_async(&mut conn)
            .await
            .map_err(|e| fail("affinity_get", e))?;
        Ok(AffinityFields(fields)
            .parse(&name)
            .map(|(_, entry)| entry)
            .filter(|entry| entry.expires_at > now))
    }

    pub(super) async fn affinity_set(
        &self,
        k: &AffinityKey,
        target: &AffinityTargetIds,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<AffinityEntry, StateError> {
        let name = self.affinity_name(k);
        // The rule's own expiry, so both backends agree on it to the nanosecond.
        let fresh = AffinityEntry::next(None, target, ttl, now);
        let key = serde_json::to_string(k).map_err(|e| fail("affinity_set", e))?;
        let (count, created): (u64, String) = self
            .eval(
                "affinity_set",
                &AFFINITY_TOUCH,
                &[&name],
                &[
                    &target.provider_id,
                    &target.endpoint_id,
                    &target.provider_key_id,
                    &stamp(now),
                    &stamp(fresh.expires_at),
                    &ttl_millis(ttl).to_string(),
                    &key,
                ],
            )
            .await?;
        Ok(AffinityEntry {
            created_at: parse_stamp(&created).unwrap_or(now),
            request_count: count,
            ..fresh
        })
    }

    pub(super) async fn affinity_invalidate(
        &self,
        k: &AffinityKey,
        provider_key_id: &str,
        endpoint_id: &str,
    ) -> Result<bool, StateError> {
        let deleted: i64 = self
            .eval(
                "affinity_invalidate",
                &AFFINITY_DROP,
                &[&self.affinity_name(k)],
                &[endpoint_id, provider_key_id],
            )
            .await?;
        Ok(deleted == 1)
    }

    pub(super) async fn affinity_list(
        &self,
        limit: usize,
    ) -> Result<Vec<(AffinityKey, AffinityEntry)>, StateError> {
        let pattern = format!("{}affinity:*", glob_escape(&self.prefix));
        let mut conn = self.conn("affinity_list").await?;
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, names) = scan_step(&mut conn, "affinity_list", cursor, &pattern).await?;
            if !names.is_empty() {
                let mut reads = redis::pipe();
                for name in &names {
                    reads.cmd("HMGET").arg(name).arg(&AFFINITY_FIELDS);
                }
                let values: Vec<Vec<Option<String>>> = reads
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| fail("affinity_list", e))?;
                for (name, fields) in names.iter().zip(values) {
                    // Gone between SCAN and HMGET (expired or cleared): parses as absent.
                    if let Some(listed) = AffinityFields(fields).parse(name) {
                        out.push(listed);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    pub(super) async fn affinity_clear(
        &self,
        affinity_key: Option<&str>,
    ) -> Result<u64, StateError> {
        let pattern = match affinity_key {
            Some(a) => format!(
                "{}affinity:{}:*",
                glob_escape(&self.prefix),
                glob_escape(&escape_component(a))
            ),
            None => format!("{}affinity:*", glob_escape(&self.prefix)),
        };
        self.delete_matching("affinity_clear", &pattern).await
    }

    pub(super) async fn clear_all(&self) -> Result<u64, StateError> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        self.delete_matching("clear_all", &pattern).await
    }

    /// Deletes every key matching `pattern`, walking with `SCAN` so Redis is never blocked by a
    /// full-keyspace command. Returns how many keys were deleted.
    async fn delete_matching(
        &self,
        operation: &'static str,
        pattern: &str,
    ) -> Result<u64, StateError> {
        let mut conn = self.conn(operation).await?;
        let mut deleted = 0u64;
        let mut cursor: u64 = 0;
        loop {
            let (next, names) = scan_step(&mut conn, operation, cursor, pattern).await?;
            if !names.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&names)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| fail(operation, e))?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

async fn eval_on<T: FromRedisValue>(
    conn: &mut MultiplexedConnection,
    operation: &'static str,
    script: &Script,
    keys: &[&str],
    args: &[&str],
) -> Result<T, StateError> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    for arg in args {
        invocation.arg(*arg);
    }
    invocation
        .invoke_async(conn)
        .await
        .map_err(|e| fail(operation, e))
}

async fn scan_step(
    conn: &mut MultiplexedConnection,
    operation: &'static str,
    cursor: u64,
    pattern: &str,
) -> Result<(u64, Vec<String>), StateError> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT)
        .query_async(conn)
        .await
        .map_err(|e| fail(operation, e))
}

/// A timestamp as the affinity hash stores it: RFC 3339, UTC, nine fraction digits, so two
/// stamps compare as strings the way their instants do (the scripts rely on it). Years past
/// 9999 (an absurd TTL) are stored as the end of 9999, which keeps the width.
fn stamp(t: DateTime<Utc>) -> String {
    const LAST: &str = "9999-12-31T23:59:59.999999999Z";
    if t.year() > 9999 {
        return LAST.to_owned();
    }
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The two lease members: in the key's set it names the endpoint, in the endpoint's the key.
fn members(req: &LeaseRequest) -> (String, String) {
    (
        join(&req.endpoint_id, &req.lease_id),
        join(&req.key_id, &req.lease_id),
    )
}

fn join(owner: &str, lease_id: &str) -> String {
    format!("{owner}{MEMBER_SEPARATOR}{lease_id}")
}

fn limit_arg(limit: Option<u32>) -> String {
    limit.map_or_else(|| "-1".to_owned(), |l| l.to_string())
}

fn to_count(n: i64) -> u32 {
    count_u32(usize::try_from(n).unwrap_or(0))
}

fn fail(operation: &'static str, e: impl std::fmt::Display) -> StateError {
    StateError::Backend {
        backend: BACKEND,
        operation,
        reason: e.to_string(),
    }
}

/// Makes an affinity key component safe to join with `:`.
fn escape_component(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
}

/// Escapes the glob characters of `SCAN MATCH`, so a prefix or id is matched literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The URL's password in every form an error message might print it: as written in the URL
/// (percent-encoded) and decoded.
fn url_passwords(url: &str) -> Vec<String> {
    let Some(encoded) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    else {
        return Vec::new();
    };
    let decoded = percent_decode(&encoded);
    let mut forms = vec![encoded];
    if decoded != forms[0] {
        forms.push(decoded);
    }
    forms.retain(|p| !p.is_empty());
    forms
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL with its password (if any) replaced by `***`; an unparsable URL is not shown at all.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable Redis URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_the_password() {
        let shown = redact_url("redis://user:s3cret@cache.internal:6379/0");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("cache.internal"), "{shown}");
        assert_eq!(redact_url("not a url"), "<unparsable Redis URL>");
        assert_eq!(
            url_passwords("redis://:p%40ss@h:1"),
            vec!["p%40ss".to_owned(), "p@ss".to_owned()]
        );
        assert!(url_passwords("redis://h:1").is_empty());
    }

    #[test]
    fn components_and_globs_are_escaped() {
        assert_eq!(escape_component("a:b%c"), "a%3Ab%25c");
        assert_eq!(glob_escape("p*[x]?\\"), "p\\*\\[x\\]\\?\\\\");
    }
}
