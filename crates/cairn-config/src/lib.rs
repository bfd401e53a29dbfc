//! Loads a Datadog-layout config directory: `datadog.yaml` (with `DD_*` environment
//! overrides) and the integration configs under `conf.d/`, into typed structs.
//!
//! This crate owns parsing, defaults and validation, and words every problem as
//! `path:line:column: key: what is wrong`. It must not run checks, open sockets, create
//! directories or print anything, and it must never reveal the API key: not in `Debug`,
//! not in errors, not through [`AgentConfig::get`].

mod agent;
mod doc;
mod error;
mod integration;
mod redact;
mod rules;

use std::path::Path;

pub use agent::{
    env_var_name, AgentConfig, AgentLogConfig, BufferConfig, CompressionKind, LogsConfig, Secret,
    WhenFull, MAX_PAYLOAD_BYTES,
};
pub use error::{ConfigError, ConfigWarning, Location};
pub use integration::{Instance, IntegrationConfig, LogsEntry};
pub use redact::{redact_url, redact_urls_in};
pub use rules::{ProcessingRule, RuleKind};

/// Everything found in a config directory.
#[derive(Debug)]
pub struct LoadedConfig {
    pub agent: AgentConfig,
    /// Sorted by name.
    pub integrations: Vec<IntegrationConfig>,
    /// One per integration that could not be loaded; that integration is absent from
    /// `integrations`, the others are unaffected.
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

/// Loads `config_dir`, reading `DD_*` overrides through `env` (injected so tests and callers
/// decide what the environment is). `Err` only when the agent itself cannot be configured:
/// the directory is missing or `datadog.yaml` is malformed. A missing `datadog.yaml` means
/// all defaults.
pub fn load(
    config_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    if !config_dir.is_dir() {
        return Err(ConfigError::DirNotFound {
            path: config_dir.to_path_buf(),
        });
    }
    let rel = Path::new("datadog.yaml");
    let main = config_dir.join(rel);
    let doc = if main.is_file() {
        let text = std::fs::read_to_string(&main).map_err(|source| ConfigError::Io {
            path: rel.to_path_buf(),
            source,
        })?;
        Some(doc::Doc::parse(doc::Origin::File(rel.to_path_buf()), text)?)
    } else {
        None
    };
    let mut warnings = Vec::new();
    let agent = AgentConfig::build(config_dir, doc.as_ref(), env, &mut warnings)?;
    let (integrations, errors) = integration::load_all(config_dir, &mut warnings);
    Ok(LoadedConfig {
        agent,
        integrations,
        errors,
        warnings,
    })
}

/// [`load`] with the process environment.
pub fn load_from_process_env(config_dir: &Path) -> Result<LoadedConfig, ConfigError> {
    load(config_dir, &|name| std::env::var(name).ok())
}
