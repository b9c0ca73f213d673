//! Loading `hookgate.yaml` in two phases: text → [`file::ConfigFile`] (serde, unknown keys are
//! errors with line and suggestion), then → [`Config`] with providers compiled, secrets decoded
//! and schemas compiled. Every problem found is reported, each naming its file and field.

pub mod error;
pub mod file;
pub mod interpolate;
pub mod secret;
pub mod units;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonschema::Validator;

use crate::providers::Provider;
use crate::source::{Schemas, Source, Sources, limiter};
use error::{ConfigError, ConfigErrors, syntax_error};
use file::{ConfigFile, SourceConfig};
use interpolate::{Env, ProcessEnv, interpolate};
use secret::Secret;

/// The checked, compiled configuration.
#[derive(Debug)]
pub struct Config {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Request bounds.
    pub limits: Limits,
    /// Broker settings, when a broker is configured.
    pub broker: Option<Broker>,
    /// Spool settings, when a spool is configured.
    pub spool: Option<crate::spool::SpoolConfig>,
    /// How long a seen id is remembered.
    pub dedup_ttl: Duration,
    /// Routing-key template (also used for spooled events when no broker is configured).
    pub routing_key: String,
    /// The endpoints.
    pub sources: Sources,
}

/// Request bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Default body limit in bytes.
    pub max_body: usize,
    /// Whole-request deadline.
    pub request_timeout: Duration,
    /// Header-read deadline.
    pub header_read_timeout: Duration,
    /// Concurrent requests.
    pub concurrency: usize,
}

/// Broker settings.
#[derive(Debug, Clone)]
pub struct Broker {
    /// AMQP URL (may hold a password).
    pub url: Secret,
    /// Exchange name.
    pub exchange: String,
    /// Routing-key template.
    pub routing_key: String,
    /// Confirm deadline.
    pub confirm_timeout: Duration,
    /// Publishing channels.
    pub channels: usize,
}

/// Largest body a spool record holds, leaving room for the metadata.
const MAX_SPOOLED_BODY: u64 = (crate::spool::record::MAX_PAYLOAD - (64 << 10)) as u64;

/// Loads and checks the configuration at `path` with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    load_str(&text, path, &ProcessEnv)
}

/// Loads configuration text; relative directories resolve against `path`'s directory.
pub fn load_str(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let text = interpolate(text, env).map_err(|missing| {
        ConfigErrors(
            missing
                .into_iter()
                .map(|m| ConfigError::MissingEnv { path: path.to_owned(), line: m.line, name: m.name })
                .collect(),
        )
    })?;
    let file: ConfigFile = serde_yaml_ng::from_str(&text).map_err(|e| syntax_error(path.to_owned(), &e))?;
    build(file, path)
}

fn build(file: ConfigFile, path: &Path) -> Result<Config, ConfigErrors> {
    let base = path.parent().unwrap_or(Path::new("."));
    let providers_dir = base.join(&file.providers_dir);
    let schemas_dir = base.join(&file.schemas_dir);
    let state_dir = base.join(&file.state_dir);
    let mut errors = Vec::new();
    let invalid = |field: String, message: String| ConfigError::Invalid { path: path.to_owned(), field, message };

    // A broker with an empty URL (`${HOOKGATE_AMQP_URL:-}` unset) is no broker.
    let broker = file.broker.as_ref().filter(|b| !b.url.expose().trim().is_empty());
    if let Some(broker) = broker {
        if broker.channels == 0 {
            errors.push(invalid("broker.channels".into(), "must be at least 1".into()));
        }
        if let Err(e) = check_routing_key(&broker.routing_key) {
            errors.push(invalid("broker.routing_key".into(), e));
        }
    }
    if broker.is_none() && file.spool.is_none() {
        errors.push(invalid(
            "broker".into(),
            "configure a broker, a spool, or both: events need somewhere durable to go".into(),
        ));
    }
    // A spool record must hold any accepted body plus its metadata.
    let largest_body =
        file.sources.iter().filter_map(|s| s.max_body).map(|b| b.0).chain([file.limits.max_body.0]).max();
    if file.spool.is_some() && largest_body.is_some_and(|b| b > MAX_SPOOLED_BODY) {
        errors.push(invalid(
            "limits.max_body".into(),
            format!("bodies over {MAX_SPOOLED_BODY} bytes cannot be spooled; lower max_body"),
        ));
    }
    if file.limits.concurrency == 0 {
        errors.push(invalid("limits.concurrency".into(), "must be at least 1".into()));
    }

    let mut providers: HashMap<String, Arc<Provider>> = HashMap::new();
    let mut schema_cache: HashMap<PathBuf, Arc<Validator>> = HashMap::new();
    let mut sources = Vec::new();
    let mut seen = HashMap::new();
    for (i, source) in file.sources.iter().enumerate() {
        let field = |f: &str| format!("sources[{i}].{f}");
        if let Some(first) = seen.insert(source.name.clone(), i) {
            errors.push(invalid(field("name"), format!("`{}` is already used by sources[{first}]", source.name)));
            continue;
        }
        if !is_url_segment(&source.name) {
            errors.push(invalid(
                field("name"),
                format!("`{}` must be letters, digits, `-`, `_` or `.` (it is a URL segment)", source.name),
            ));
        }
        let provider = match providers.get(&source.provider) {
            Some(p) => p.clone(),
            None => match load_provider(&providers_dir, &source.provider) {
                Ok(p) => {
                    let p = Arc::new(p);
                    providers.insert(source.provider.clone(), p.clone());
                    p
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
        };
        match build_source(source, provider, &file, &schemas_dir, &state_dir, &mut schema_cache) {
            Ok(s) => sources.push(s),
            Err(problems) => errors.extend(problems.into_iter().map(|(f, m)| invalid(field(&f), m))),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        listen: file.listen,
        admin_listen: file.admin_listen,
        limits: Limits {
            max_body: usize::try_from(file.limits.max_body.0).unwrap_or(usize::MAX),
            request_timeout: file.limits.request_timeout.0,
            header_read_timeout: file.limits.header_read_timeout.0,
            concurrency: file.limits.concurrency,
        },
        broker: broker.map(|b| Broker {
            url: b.url.clone(),
            exchange: b.exchange.clone(),
            routing_key: b.routing_key.clone(),
            confirm_timeout: b.confirm_timeout.0,
            channels: b.channels,
        }),
        spool: file.spool.as_ref().map(|s| crate::spool::SpoolConfig {
            dir: base.join(&s.dir),
            max_bytes: s.max_bytes.0,
            fsync: s.fsync,
            segment_bytes: s.segment_size.0.max(1),
        }),
        routing_key: file.broker.as_ref().map_or_else(file::default_routing_key, |b| b.routing_key.clone()),
        dedup_ttl: file.dedup.ttl.0,
        sources: Sources::new(sources),
    })
}

fn load_provider(dir: &Path, name: &str) -> Result<Provider, ConfigError> {
    let path = dir.join(format!("{name}.yaml"));
    if !path.exists() {
        let known = known_providers(dir);
        let hint = known
            .iter()
            .min_by_key(|k| strsim::levenshtein(k, name))
            .filter(|k| strsim::levenshtein(k, name) <= 3)
            .map(|k| format!("; did you mean `{k}`?"))
            .unwrap_or_default();
        return Err(ConfigError::Invalid {
            path,
            field: "provider".into(),
            message: format!("no provider `{name}` in {}{hint} (known: {})", dir.display(), known.join(", ")),
        });
    }
    Provider::load(dir, name)
}

/// Provider names in `dir`, sorted.
pub fn known_providers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".yaml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn build_source(
    config: &SourceConfig,
    provider: Arc<Provider>,
    file: &ConfigFile,
    schemas_dir: &Path,
    state_dir: &Path,
    cache: &mut HashMap<PathBuf, Arc<Validator>>,
) -> Result<Source, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let secret_file = state_dir.join(format!("{}.secret", config.name));
    let mut secrets = config.secrets.clone();
    // A secret handed over in an earlier handshake (Asana, Notion) is still valid after a restart.
    if let Ok(captured) = std::fs::read_to_string(&secret_file) {
        secrets.push(Secret::new(captured.trim()));
    }
    let captures = provider.handshakes().iter().any(|h| h.captures_secret());
    if secrets.is_empty() && provider.needs_secrets() && !captures {
        problems.push((
            "secrets".to_owned(),
            format!("needs at least one secret: `{}` requests are signed", provider.name),
        ));
    }
    let keys = match provider.decode_secrets(&secrets) {
        Ok(keys) => keys,
        Err(errors) => {
            problems.extend(errors.into_iter().map(|(i, e)| (format!("secrets[{i}]"), e)));
            Default::default()
        }
    };
    if provider.needs_public_url() {
        match &config.public_url {
            None => problems.push((
                "public_url".to_owned(),
                format!("`{}` signs the URL it calls: set public_url to this endpoint's external URL as configured at the provider", provider.name),
            )),
            Some(url) if url.contains('?') || !(url.starts_with("https://") || url.starts_with("http://")) => problems.push((
                "public_url".to_owned(),
                format!("`{url}` must be an absolute http(s) URL without query; the request's query is appended"),
            )),
            Some(_) => {}
        }
    }
    let require = config
        .require
        .iter()
        .map(|(expr, allowed)| crate::providers::value::Value::parse(expr).map(|v| (v, allowed.clone())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problems.push(("require".to_owned(), e)))
        .unwrap_or_default();
    let token_header = config
        .token_header
        .as_deref()
        .map(crate::providers::value::header_name)
        .transpose()
        .map_err(|e| problems.push(("token_header".to_owned(), e)))
        .ok()
        .flatten();
    let limiter = config
        .rate_limit
        .map(limiter)
        .transpose()
        .map_err(|e| problems.push(("rate_limit".to_owned(), e.to_owned())))
        .ok()
        .flatten();
    let mut schemas = Schemas::default();
    for (event_type, rel) in &config.schemas {
        match compile_schema(&schemas_dir.join(rel), cache) {
            Ok(v) if event_type == "*" => schemas.fallback = Some(v),
            Ok(v) => {
                schemas.by_type.insert(event_type.clone(), v);
            }
            Err(e) => problems.push((format!("schemas.{event_type}"), e)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Source {
        name: Arc::from(config.name.as_str()),
        tolerance: config.tolerance.map(|t| t.0),
        max_body: usize::try_from(config.max_body.unwrap_or(file.limits.max_body).0).unwrap_or(usize::MAX),
        keys: std::sync::RwLock::new(Arc::new(keys)),
        public_url: config.public_url.clone(),
        verify_token: config.verify_token.clone(),
        token_header,
        auto_confirm: config.auto_confirm,
        require,
        secret_file,
        provider,
        limiter,
        schemas,
        on_invalid: config.on_invalid,
    })
}

/// Reads and compiles a JSON Schema once, sharing it between sources that name the same file.
fn compile_schema(path: &Path, cache: &mut HashMap<PathBuf, Arc<Validator>>) -> Result<Arc<Validator>, String> {
    if let Some(v) = cache.get(path) {
        return Ok(v.clone());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let schema: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let validator = jsonschema::options()
        .with_base_uri(format!("file://{}", absolute.display()))
        .build(&schema)
        .map_err(|e| format!("{} is not a valid JSON Schema: {e}", path.display()))?;
    let validator = Arc::new(validator);
    cache.insert(path.to_owned(), validator.clone());
    Ok(validator)
}

fn check_routing_key(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("unclosed `{`")?;
        let name = &rest[open + 1..open + close];
        if !matches!(name, "source" | "provider" | "type") {
            return Err(format!("unknown placeholder `{{{name}}}`: use {{source}}, {{provider}} or {{type}}"));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

fn is_url_segment(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests;
