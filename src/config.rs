//! Configuration: compiled-in defaults, a profile file, the environment and command-line flags, merged
//! in that order and checked before anything starts.
//!
//! Every setting must exist in `config/default.toml`; that file is the schema. Values from the
//! environment are strings, so they are converted to the type the default has, and an error names both
//! the setting and where its value came from.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The defaults, compiled in so that the binary starts on its own.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment names that users of the original systems already set, and the setting each one feeds.
pub const LEGACY_ENV: &[(&str, &str)] = &[
    ("CONDUIT_MASTER_KEY", "admin.master_key"),
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("JWT_SECRET", "jwt.secret"),
    ("JWT_PUBLIC_KEY", "jwt.public_key"),
    ("JWT_ALGORITHM", "jwt.algorithm"),
    ("JWT_ISSUER", "jwt.issuer"),
    ("JWT_AUDIENCE", "jwt.audience"),
    ("JWT_CLOCK_SKEW_SECONDS", "jwt.clock_skew_seconds"),
    ("JWT_TENANT_ID_CLAIM", "jwt.tenant_id_claim"),
    ("JWT_USER_ID_CLAIM", "jwt.user_id_claim"),
    ("JWT_SESSION_ID_CLAIM", "jwt.session_id_claim"),
    ("JWKS_URL", "jwt.jwks_url"),
    ("JWT_ENTITY_CLAIM", "jwt.entity_claim"),
    ("REQUIRE_AUTH", "chat.require_auth"),
    ("ORCHESTRATOR_URL", "chat.orchestrator_url"),
    ("HSAFA_SECRET_KEY", "spaces.secret_key"),
    ("HSAFA_PUBLIC_KEY", "spaces.public_key"),
];

/// Prefix of the structured environment overrides: `SWITCHYARD__SECTION__KEY`.
pub const ENV_PREFIX: &str = "SWITCHYARD__";

/// Why the configuration could not be loaded; the text names the setting and the source of its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {message}")]
    Invalid { source_name: String, message: String },
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
}

impl ConfigError {
    fn invalid(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { source_name: source_name.into(), message: message.into() }
    }
}

/// The whole configuration, one field per section of `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub jwt: crate::auth::jwt::JwtSettings,
    pub signalr: SignalrConfig,
    pub cors: CorsConfig,
    pub generation: GenerationConfig,
    pub ops: OpsConfig,
    pub shutdown: ShutdownConfig,
    pub navigation: NavigationConfig,
    pub chat: crate::chat::settings::ChatSettings,
    pub spaces: SpacesConfig,
}

/// `[navigation]`: who may reach the credential-less navigation-state hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NavigationConfig {
    /// Networks (`10.0.0.0/8`, `::1/128`, or single addresses) whose clients may connect.
    pub allowed_networks: Vec<String>,
}

/// `[shutdown]`: how a SIGTERM or SIGINT ends the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Seconds the server waits for requests and connections to finish before it exits anyway.
    pub timeout: u64,
}

/// `[ops]`: operators' endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// An extra listener serving only `GET /metrics` without the master key ("" = none): bind it to a
    /// network only the scraper reaches.
    pub metrics_bind: String,
    /// The operator pages' folder (`/admin`, `/test-admin-signalr.html`); "" = not served.
    pub pages_dir: String,
    /// How often this node reads the key change log, so that key changes made by another process or
    /// node are announced and enforced here within about this long.
    pub key_changes_poll_ms: u64,
    /// How long key change log entries are kept before they are pruned.
    pub key_changes_retention_seconds: u64,
}

/// `[spaces]`: the spaces gateway's two system keys and stream settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpacesConfig {
    pub secret_key: String,
    pub public_key: String,
    pub keep_alive_seconds: u64,
    pub max_list_limit: i64,
    pub replay_batch: i64,
}

impl fmt::Debug for SpacesConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |k: &str| if k.is_empty() { "<unset>" } else { "<redacted>" };
        f.debug_struct("SpacesConfig")
            .field("secret_key", &shown(&self.secret_key))
            .field("public_key", &shown(&self.public_key))
            .field("keep_alive_seconds", &self.keep_alive_seconds)
            .field("max_list_limit", &self.max_list_limit)
            .field("replay_batch", &self.replay_batch)
            .finish()
    }
}

/// `[generation]`: jobs, the simulated provider and connection limits of the generation hubs.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    pub simulated_provider: bool,
    pub simulated_duration_ms: u64,
    pub simulated_steps: u32,
    pub simulated_cost: f64,
    pub default_max_connections: usize,
    pub connect_burst: usize,
    pub connect_window_seconds: u64,
    pub connect_cooldown_seconds: u64,
    pub worker_token: String,
    pub updates_stream: String,
    pub jobs_stream: String,
    pub events_stream: String,
    /// Providers whose health operators watch, besides the simulated one (workers report on them).
    pub providers: Vec<String>,
}

impl fmt::Debug for GenerationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerationConfig")
            .field("simulated_provider", &self.simulated_provider)
            .field("simulated_duration_ms", &self.simulated_duration_ms)
            .field("default_max_connections", &self.default_max_connections)
            .field("worker_token", &if self.worker_token.is_empty() { "<unset>" } else { "<redacted>" })
            .finish_non_exhaustive()
    }
}

/// `[signalr]`: hub limits and the conformance profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalrConfig {
    pub conformance: bool,
    pub detailed_errors: bool,
    pub max_message_size: usize,
    pub keep_alive_seconds: u64,
    pub client_timeout_seconds: u64,
    pub handshake_timeout_seconds: u64,
    pub max_outgoing_queue: usize,
    pub max_outgoing_bytes: usize,
    pub stateful_reconnect_buffer: usize,
}

impl SignalrConfig {
    /// Hub options with these settings.
    pub fn hub_options(&self) -> crate::signalr::HubOptions {
        use std::time::Duration;
        crate::signalr::HubOptions {
            detailed_errors: self.detailed_errors,
            max_message_size: self.max_message_size,
            keep_alive: Duration::from_secs(self.keep_alive_seconds),
            client_timeout: Duration::from_secs(self.client_timeout_seconds),
            handshake_timeout: Duration::from_secs(self.handshake_timeout_seconds),
            max_outgoing_queue: self.max_outgoing_queue,
            max_outgoing_bytes: self.max_outgoing_bytes,
            stateful_reconnect_buffer: self.stateful_reconnect_buffer,
            ..crate::signalr::HubOptions::default()
        }
    }
}

/// `[cors]`: which browser origins may call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
}

/// `[server]`: where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub workers: usize,
    pub data_dir: PathBuf,
    pub public_url: String,
}

/// `[database]`: SQLite by default, PostgreSQL for several nodes.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: usize,
    pub acquire_timeout_ms: u64,
}

/// `[redis]`: optional on one node.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    pub pool_size: usize,
    pub key_prefix: String,
    pub timeout_ms: u64,
    pub backplane_stream: String,
}

/// `[admin]`: the master key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub master_key: String,
}

/// `[log]`: the tracing filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
}

// URLs may carry passwords and the master key is a secret: Debug shows neither.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .finish()
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("backplane_stream", &self.backplane_stream)
            .finish()
    }
}

impl RedisConfig {
    /// A Redis key or stream name in this deployment's namespace.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.key_prefix)
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.master_key.is_empty() { "<unset>" } else { "<redacted>" };
        f.debug_struct("AdminConfig").field("master_key", &shown).finish()
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

/// Where the settings come from. Tests build one by hand; the binary uses [`ConfigSources::from_process`].
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// Profile name: `config/<profile>.toml` must exist.
    pub profile: Option<String>,
    /// Folder holding the profile files.
    pub config_dir: PathBuf,
    /// The environment (only `SWITCHYARD__*` and the legacy names are read).
    pub env: HashMap<String, String>,
    /// Command-line overrides as (dotted setting, raw value).
    pub overrides: Vec<(String, String)>,
}

impl ConfigSources {
    /// The process environment, with profile from the flag or `SWITCHYARD_PROFILE`.
    pub fn from_process(profile: Option<String>, config_dir: Option<PathBuf>) -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let profile = profile.or_else(|| env.get("SWITCHYARD_PROFILE").cloned()).filter(|p| !p.is_empty());
        let config_dir = config_dir
            .or_else(|| env.get("SWITCHYARD_CONFIG_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("config"));
        ConfigSources { profile, config_dir, env, overrides: Vec::new() }
    }
}

impl Config {
    /// Merges every source over the defaults and checks the result.
    pub fn load(sources: &ConfigSources) -> Result<Config, ConfigError> {
        let defaults: toml::Table =
            DEFAULT_TOML.parse().map_err(|e| ConfigError::invalid("config/default.toml", format!("{e}")))?;
        let mut merged = defaults.clone();
        // Which source set each dotted setting, for error messages.
        let mut origin: BTreeMap<String, String> = BTreeMap::new();

        if let Some(profile) = &sources.profile {
            if profile.contains(['/', '\\']) || profile.starts_with('.') {
                return Err(ConfigError::invalid("profile", format!("'{profile}' is not a profile name")));
            }
            let path = sources.config_dir.join(format!("{profile}.toml"));
            let text = std::fs::read_to_string(&path)
                .map_err(|error| ConfigError::Read { path: path.display().to_string(), error })?;
            let table: toml::Table =
                text.parse().map_err(|e| ConfigError::invalid(path.display().to_string(), format!("{e}")))?;
            merge_file(&mut merged, &defaults, &table, "", &path, &mut origin)?;
        }

        for (env_name, setting) in LEGACY_ENV {
            if let Some(raw) = sources.env.get(*env_name) {
                set_raw(&mut merged, &defaults, setting, raw, env_name)?;
                origin.insert(setting.to_string(), env_name.to_string());
            }
        }

        let mut structured: Vec<(&String, &String)> =
            sources.env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        structured.sort();
        for (env_name, raw) in structured {
            let setting = env_name[ENV_PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
            set_raw(&mut merged, &defaults, &setting, raw, env_name)?;
            origin.insert(setting, env_name.clone());
        }

        for (setting, raw) in &sources.overrides {
            let flag = format!("--{}", setting.rsplit('.').next().unwrap_or(setting));
            set_raw(&mut merged, &defaults, setting, raw, &flag)?;
            origin.insert(setting.clone(), flag);
        }

        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
            let path = e.path().to_string();
            let source_name = origin.get(&path).cloned().unwrap_or_else(|| path.clone());
            ConfigError::invalid(source_name, format!("{path}: {}", e.inner()))
        })?;
        config.validate(&origin)?;
        let redis_configured = !config.redis.url.is_empty();
        if let Err((setting, message)) = config.chat.check(sources.profile.as_deref(), redis_configured) {
            let named = match origin.get(setting) {
                Some(src) if src != setting => format!("{setting} (from {src})"),
                _ => setting.to_string(),
            };
            return Err(ConfigError::invalid(named, message));
        }
        Ok(config)
    }

    fn validate(&self, origin: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let named = |setting: &str| match origin.get(setting) {
            Some(src) if src != setting => format!("{setting} (from {src})"),
            _ => setting.to_string(),
        };
        if self.server.bind.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                named("server.bind"),
                format!("'{}' is not an address like 127.0.0.1:8080", self.server.bind),
            ));
        }
        let url = &self.server.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::invalid(named("server.public_url"), "must start with http:// or https://"));
        }
        if let Err(message) = crate::db::DatabaseKind::parse(&self.database.url) {
            return Err(ConfigError::invalid(named("database.url"), message));
        }
        if self.database.pool_size == 0 {
            return Err(ConfigError::invalid(named("database.pool_size"), "must be at least 1"));
        }
        let redis = &self.redis.url;
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError::invalid(named("redis.url"), "must start with redis:// or rediss://"));
        }
        let s = &self.signalr;
        if s.max_message_size < 1024 {
            return Err(ConfigError::invalid(named("signalr.max_message_size"), "must be at least 1024"));
        }
        if s.keep_alive_seconds == 0 || s.client_timeout_seconds <= s.keep_alive_seconds {
            return Err(ConfigError::invalid(
                named("signalr.client_timeout_seconds"),
                "must be greater than signalr.keep_alive_seconds, which must be at least 1",
            ));
        }
        if s.max_outgoing_queue == 0 || s.handshake_timeout_seconds == 0 {
            return Err(ConfigError::invalid(named("signalr.max_outgoing_queue"), "limits must be at least 1"));
        }
        if self.generation.simulated_steps == 0 {
            return Err(ConfigError::invalid(named("generation.simulated_steps"), "must be at least 1"));
        }
        if !self.generation.simulated_cost.is_finite() || self.generation.simulated_cost < 0.0 {
            return Err(ConfigError::invalid(named("generation.simulated_cost"), "must be zero or more"));
        }
        if !(10..=60_000).contains(&self.ops.key_changes_poll_ms) {
            return Err(ConfigError::invalid(named("ops.key_changes_poll_ms"), "must be between 10 and 60000"));
        }
        if self.ops.key_changes_retention_seconds < 60 {
            return Err(ConfigError::invalid(named("ops.key_changes_retention_seconds"), "must be at least 60"));
        }
        if self.redis.pool_size == 0 {
            return Err(ConfigError::invalid(named("redis.pool_size"), "must be at least 1"));
        }
        if self.spaces.keep_alive_seconds == 0 || self.spaces.max_list_limit < 1 || self.spaces.replay_batch < 1 {
            return Err(ConfigError::invalid(
                named("spaces.keep_alive_seconds"),
                "spaces.keep_alive_seconds, max_list_limit and replay_batch must be at least 1",
            ));
        }
        if let Err(e) = crate::auth::jwt::JwtVerifier::from_settings(&self.jwt) {
            let setting = e.setting;
            return Err(ConfigError::invalid(named(setting), e.message));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::invalid(named("log.level"), format!("'{}': {e}", self.log.level)));
        }
        Ok(())
    }

    /// Where the embedded SQLite database lives when no URL is configured.
    pub fn sqlite_default_path(&self) -> PathBuf {
        self.server.data_dir.join("switchyard.sqlite3")
    }

    /// The networks allowed to reach the navigation-state hub; an entry that does not parse stops the start.
    pub fn navigation_networks(&self) -> Result<Vec<crate::hubs::navigation_state::Network>, ConfigError> {
        self.navigation
            .allowed_networks
            .iter()
            .map(|n| {
                crate::hubs::navigation_state::Network::parse(n)
                    .map_err(|e| ConfigError::invalid("navigation.allowed_networks", e))
            })
            .collect()
    }

    /// The open metrics listener's address, when one is configured.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let bind = self.ops.metrics_bind.trim();
        if bind.is_empty() {
            return Ok(None);
        }
        bind.parse()
            .map(Some)
            .map_err(|_| ConfigError::invalid("ops.metrics_bind", format!("'{bind}' is not an address")))
    }

    /// The bind address, already validated by [`Config::load`].
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .bind
            .parse()
            .map_err(|_| ConfigError::invalid("server.bind", format!("'{}' is not an address", self.server.bind)))
    }
}

/// Overlays a profile file, refusing settings the defaults do not define.
fn merge_file(
    target: &mut toml::Table,
    defaults: &toml::Table,
    overlay: &toml::Table,
    prefix: &str,
    file: &Path,
    origin: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (key, value) in overlay {
        let setting = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let Some(default) = defaults.get(key) else {
            return Err(ConfigError::invalid(file.display().to_string(), format!("unknown setting '{setting}'")));
        };
        match (default, value) {
            (toml::Value::Table(d), toml::Value::Table(v)) => {
                let Some(toml::Value::Table(t)) = target.get_mut(key) else {
                    return Err(ConfigError::invalid(
                        file.display().to_string(),
                        format!("'{setting}' is not a section"),
                    ));
                };
                merge_file(t, d, v, &setting, file, origin)?;
            }
            (toml::Value::Table(_), _) | (_, toml::Value::Table(_)) => {
                return Err(ConfigError::invalid(
                    file.display().to_string(),
                    format!("'{setting}' must be a {}", type_name(default)),
                ));
            }
            _ => {
                target.insert(key.clone(), value.clone());
                origin.insert(setting, file.display().to_string());
            }
        }
    }
    Ok(())
}

/// Sets one dotted setting from a raw string, converted to the type its default has.
fn set_raw(
    target: &mut toml::Table,
    defaults: &toml::Table,
    setting: &str,
    raw: &str,
    source_name: &str,
) -> Result<(), ConfigError> {
    let parts: Vec<&str> = setting.split('.').collect();
    let (last, sections) = match parts.split_last() {
        Some(split) => split,
        None => return Err(ConfigError::invalid(source_name, "empty setting name")),
    };
    let unknown = || ConfigError::invalid(source_name, format!("unknown setting '{setting}'"));
    let mut table = target;
    let mut default_table = defaults;
    for section in sections {
        default_table = match default_table.get(*section) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(unknown()),
        };
        table = match table.get_mut(*section) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(unknown()),
        };
    }
    let default = default_table.get(*last).ok_or_else(unknown)?;
    let value = coerce(raw, default).map_err(|expected| {
        let shown = if is_secret_setting(setting) { "<redacted>".to_string() } else { format!("'{raw}'") };
        ConfigError::invalid(source_name, format!("{setting}: expected {expected}, got {shown}"))
    })?;
    table.insert(last.to_string(), value);
    Ok(())
}

fn is_secret_setting(setting: &str) -> bool {
    ["key", "secret", "password", "token"].iter().any(|s| setting.contains(s))
}

fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "string",
        toml::Value::Integer(_) => "whole number",
        toml::Value::Float(_) => "number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "date-time",
        toml::Value::Array(_) => "comma-separated list",
        toml::Value::Table(_) => "section",
    }
}

fn coerce(raw: &str, like: &toml::Value) -> Result<toml::Value, &'static str> {
    let trimmed = raw.trim();
    Ok(match like {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(trimmed.parse().map_err(|_| type_name(like))?),
        toml::Value::Float(_) => toml::Value::Float(trimmed.parse().map_err(|_| type_name(like))?),
        toml::Value::Boolean(_) => toml::Value::Boolean(match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(type_name(like)),
        }),
        toml::Value::Array(_) => toml::Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        toml::Value::Datetime(_) | toml::Value::Table(_) => return Err(type_name(like)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(env: &[(&str, &str)]) -> ConfigSources {
        ConfigSources {
            profile: None,
            config_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            overrides: Vec::new(),
        }
    }

    #[test]
    fn defaults_load_and_bind_loopback() {
        let config = Config::load(&sources(&[])).expect("defaults load");
        assert_eq!(config.server.bind, "127.0.0.1:8080");
        assert!(config.database.url.is_empty());
        assert!(config.admin.master_key.is_empty());
    }

    #[test]
    fn precedence_is_profile_then_legacy_then_structured_then_flags() {
        let mut s = sources(&[("DATABASE_URL", "postgres://a@h/db"), ("SWITCHYARD__SERVER__WORKERS", "3")]);
        s.profile = Some("production".into());
        let c = Config::load(&s).unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:8080", "profile overrides default");
        assert_eq!(c.database.url, "postgres://a@h/db", "legacy env name is honoured");
        assert_eq!(c.server.workers, 3, "structured env is converted to the default's type");

        s.env.insert("SWITCHYARD__DATABASE__URL".into(), "sqlite://x.db".into());
        s.overrides.push(("server.bind".into(), "127.0.0.1:9999".into()));
        let c = Config::load(&s).unwrap();
        assert_eq!(c.database.url, "sqlite://x.db", "structured env beats the legacy name");
        assert_eq!(c.server.bind, "127.0.0.1:9999", "flag beats everything");
    }

    #[test]
    fn master_key_from_conduit_env_name() {
        let c = Config::load(&sources(&[("CONDUIT_MASTER_KEY", "mk-123")])).unwrap();
        assert_eq!(c.admin.master_key, "mk-123");
        assert!(!format!("{c:?}").contains("mk-123"), "Debug never shows the key");
    }

    #[test]
    fn bad_values_name_the_setting_and_source() {
        let err = Config::load(&sources(&[("SWITCHYARD__SERVER__BIND", "nope")])).unwrap_err().to_string();
        assert!(err.contains("server.bind") && err.contains("SWITCHYARD__SERVER__BIND"), "{err}");

        let err = Config::load(&sources(&[("SWITCHYARD__SERVER__WORKERS", "many")])).unwrap_err().to_string();
        assert!(err.contains("server.workers") && err.contains("whole number"), "{err}");

        let err = Config::load(&sources(&[("SWITCHYARD__SERVER__BINDD", "x")])).unwrap_err().to_string();
        assert!(err.contains("unknown setting 'server.bindd'"), "{err}");

        let err = Config::load(&sources(&[("REDIS_URL", "http://x")])).unwrap_err().to_string();
        assert!(err.contains("redis.url") && err.contains("REDIS_URL"), "{err}");

        let err = Config::load(&sources(&[("DATABASE_URL", "mysql://x")])).unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");

        let mut s = sources(&[]);
        s.profile = Some("nosuch".into());
        assert!(Config::load(&s).unwrap_err().to_string().contains("nosuch.toml"));
    }

    #[test]
    fn secrets_are_not_echoed_in_errors() {
        let mut defaults: toml::Table = DEFAULT_TOML.parse().unwrap();
        let d = defaults.clone();
        // A secret setting with a wrong type would echo its value; make sure it does not.
        if let Some(toml::Value::Table(admin)) = defaults.get_mut("admin") {
            admin.insert("master_key".into(), toml::Value::Integer(1));
        }
        let err = set_raw(&mut defaults.clone(), &defaults, "admin.master_key", "s3cret", "X").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let _ = d;
    }

    #[test]
    fn redacts_url_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
