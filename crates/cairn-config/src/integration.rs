//! Integration configs: `conf.d/<name>.d/*.yaml` and `conf.d/<name>.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::doc::{as_mapping, as_sequence, describe, field, Doc, Kind, Node, Origin};
use crate::error::{ConfigError, ConfigWarning, Location};
use crate::rules::{parse_rules, ProcessingRule};

const DEFAULT_MIN_COLLECTION_INTERVAL_SECS: f64 = 15.0;

/// One entry of an integration's `logs:` list.
#[derive(Debug, Clone)]
pub struct LogsEntry {
    /// The entry's `type`; only `integration` entries receive `send_log` logs.
    pub kind: String,
    pub source: Option<String>,
    pub service: Option<String>,
    pub tags: Vec<String>,
    pub processing_rules: Vec<ProcessingRule>,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Instance {
    /// The mapping as written, converted to JSON; this is what the check receives.
    pub value: Value,
    pub min_collection_interval_secs: f64,
    pub tags: Vec<String>,
    pub name: Option<String>,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct IntegrationConfig {
    pub name: String,
    /// The first file that configures this integration (full path).
    pub path: PathBuf,
    /// `Null` or an `Object`.
    pub init_config: Value,
    pub instances: Vec<Instance>,
    pub logs: Vec<LogsEntry>,
}

impl IntegrationConfig {
    /// The entry whose source, service and tags a check's `send_log` logs carry.
    pub fn integration_logs_entry(&self) -> Option<&LogsEntry> {
        self.logs.iter().find(|entry| entry.kind == "integration")
    }
}

/// Loads every integration under `conf.d`. A broken file skips its integration only:
/// one typo must not stop every other check.
pub(crate) fn load_all(
    config_dir: &Path,
    warnings: &mut Vec<ConfigWarning>,
) -> (Vec<IntegrationConfig>, Vec<ConfigError>) {
    let mut integrations = Vec::new();
    let mut errors = Vec::new();
    let files = match discover(config_dir) {
        Ok(files) => files,
        Err(e) => return (integrations, vec![e]),
    };
    for (name, rels) in files {
        let mut file_warnings = Vec::new();
        match load_integration(config_dir, &name, &rels, &mut file_warnings) {
            Ok(integration) => {
                integrations.push(integration);
                warnings.extend(file_warnings);
            }
            Err(e) => errors.push(e),
        }
    }
    (integrations, errors)
}

fn is_yaml(file_name: &str) -> bool {
    file_name.ends_with(".yaml") || file_name.ends_with(".yml")
}

/// Integration name → its config files (relative to the config dir), in load order.
/// `BTreeMap` and sorted directory listings keep the result independent of the filesystem.
fn discover(config_dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, ConfigError> {
    let conf_d = Path::new("conf.d");
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    if !config_dir.join(conf_d).is_dir() {
        return Ok(out);
    }
    for entry in sorted_entries(config_dir, conf_d)? {
        let Some(file_name) = entry.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let full = config_dir.join(&entry);
        if let Some(name) = file_name.strip_suffix(".d").filter(|_| full.is_dir()) {
            let files = dir_files(config_dir, &entry)?;
            if !files.is_empty() {
                out.entry(name.to_string()).or_default().extend(files);
            }
        } else if is_yaml(file_name) && full.is_file() {
            let name = file_name
                .trim_end_matches(".yaml")
                .trim_end_matches(".yml")
                .to_string();
            out.entry(name).or_default().push(entry);
        }
    }
    Ok(out)
}

fn sorted_entries(config_dir: &Path, rel_dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_err = |source| ConfigError::Io {
        path: rel_dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(config_dir.join(rel_dir)).map_err(io_err)? {
        entries.push(rel_dir.join(entry.map_err(io_err)?.file_name()));
    }
    entries.sort();
    Ok(entries)
}

/// The files of one `<name>.d`: its `.yaml`/`.yml` files, or `conf.yaml.default` when there
/// are none (a shipped default yields to anything the operator wrote). `auto_conf.yaml` is
/// for container autodiscovery, which Cairn does not do.
fn dir_files(config_dir: &Path, rel_dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    let mut default = None;
    for entry in sorted_entries(config_dir, rel_dir)? {
        let Some(file_name) = entry.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') || !config_dir.join(&entry).is_file() {
            continue;
        }
        if file_name == "conf.yaml.default" {
            default = Some(entry);
        } else if is_yaml(file_name) && file_name != "auto_conf.yaml" {
            files.push(entry);
        }
    }
    if files.is_empty() {
        files.extend(default);
    }
    Ok(files)
}

fn load_integration(
    config_dir: &Path,
    name: &str,
    rels: &[PathBuf],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<IntegrationConfig, ConfigError> {
    let mut integration = IntegrationConfig {
        name: name.to_string(),
        path: rels
            .first()
            .map(|rel| config_dir.join(rel))
            .unwrap_or_default(),
        init_config: Value::Null,
        instances: Vec::new(),
        logs: Vec::new(),
    };
    for (i, rel) in rels.iter().enumerate() {
        let text =
            std::fs::read_to_string(config_dir.join(rel)).map_err(|source| ConfigError::Io {
                path: rel.clone(),
                source,
            })?;
        let doc = Doc::parse(Origin::File(rel.clone()), text)?;
        let Some(root) = doc.mapping_root()? else {
            return Err(ConfigError::Empty { path: rel.clone() });
        };
        let init_config = parse_init_config(&doc, root)?;
        if i == 0 {
            integration.init_config = init_config;
        }
        integration.instances.extend(parse_instances(&doc, root)?);
        integration.logs.extend(parse_logs(&doc, root, warnings)?);
    }
    Ok(integration)
}

fn location(doc: &Doc, node: &Node) -> Location {
    // Integration docs always come from files, so there is always a location.
    doc.location(node).unwrap_or_else(|| Location {
        path: PathBuf::new(),
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    })
}

fn parse_init_config(doc: &Doc, root: &Node) -> Result<Value, ConfigError> {
    match field(root, "init_config") {
        None => Ok(Value::Null),
        Some(node) if as_mapping(node).is_some() => Ok(crate::doc::to_json(node)),
        Some(node) => Err(doc.invalid(
            node,
            "init_config",
            format!("expected a mapping or null, got {}", describe(node)),
        )),
    }
}

fn parse_instances(doc: &Doc, root: &Node) -> Result<Vec<Instance>, ConfigError> {
    let Some(node) = field(root, "instances") else {
        return Err(doc.missing("instances", "missing (a check needs at least one instance)"));
    };
    let Some(items) = as_sequence(node) else {
        return Err(doc.invalid(
            node,
            "instances",
            format!("expected a list of mappings, got {}", describe(node)),
        ));
    };
    if items.is_empty() {
        return Err(doc.invalid(
            node,
            "instances",
            "empty list (a check needs at least one instance)".to_string(),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_instance(doc, item, &format!("instances[{i}]")))
        .collect()
}

fn parse_instance(doc: &Doc, item: &Node, key: &str) -> Result<Instance, ConfigError> {
    if as_mapping(item).is_none() {
        return Err(doc.invalid(
            item,
            key,
            format!("expected a mapping, got {}", describe(item)),
        ));
    }
    let min_collection_interval_secs = match field(item, "min_collection_interval") {
        None => DEFAULT_MIN_COLLECTION_INTERVAL_SECS,
        Some(node) => {
            let kind = Kind::Float {
                min: 0.0,
                exclusive: true,
            };
            doc.scalar(node, &kind)
                .map_err(|p| doc.invalid(node, &format!("{key}.min_collection_interval"), p))?
                .as_f64()
                .unwrap_or(DEFAULT_MIN_COLLECTION_INTERVAL_SECS)
        }
    };
    let tags = match field(item, "tags") {
        None => Vec::new(),
        Some(node) => string_list(doc, node, &format!("{key}.tags"), false)?,
    };
    let name = match field(item, "name") {
        None => None,
        Some(node) => doc
            .string(node)
            .map_err(|p| doc.invalid(node, &format!("{key}.name"), p))?,
    };
    Ok(Instance {
        value: crate::doc::to_json(item),
        min_collection_interval_secs,
        tags,
        name,
        location: location(doc, item),
    })
}

/// Tags: a list of strings, or (where `comma_ok`) one comma-separated string, as Datadog
/// accepts for logs entries.
fn string_list(
    doc: &Doc,
    node: &Node,
    key: &str,
    comma_ok: bool,
) -> Result<Vec<String>, ConfigError> {
    if let Some(items) = as_sequence(node) {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let s = match doc.string(item) {
                Ok(s) => s,
                Err(_) => {
                    return Err(doc.invalid(
                        item,
                        &format!("{key}[{i}]"),
                        format!("expected a string, got {}", describe(item)),
                    ))
                }
            };
            out.extend(s);
        }
        return Ok(out);
    }
    if comma_ok && as_mapping(node).is_none() {
        if let Ok(Some(s)) = doc.string(node) {
            return Ok(s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect());
        }
    }
    let expected = if comma_ok {
        "a list of strings or a comma-separated string"
    } else {
        "a list of strings"
    };
    Err(doc.invalid(
        node,
        key,
        format!("expected {expected}, got {}", describe(node)),
    ))
}

fn parse_logs(
    doc: &Doc,
    root: &Node,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<LogsEntry>, ConfigError> {
    let Some(node) = field(root, "logs") else {
        return Ok(Vec::new());
    };
    let Some(items) = as_sequence(node) else {
        return Err(doc.invalid(
            node,
            "logs",
            format!("expected a list of mappings, got {}", describe(node)),
        ));
    };
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let key = format!("logs[{i}]");
        if as_mapping(item).is_none() {
            return Err(doc.invalid(
                item,
                &key,
                format!("expected a mapping, got {}", describe(item)),
            ));
        }
        let optional_string = |name: &str| -> Result<Option<String>, ConfigError> {
            match field(item, name) {
                None => Ok(None),
                Some(node) => doc
                    .string(node)
                    .map_err(|p| doc.invalid(node, &format!("{key}.{name}"), p)),
            }
        };
        let Some(kind) = optional_string("type")? else {
            return Err(doc.invalid(
                item,
                &format!("{key}.type"),
                "missing (expected a string such as \"integration\")".to_string(),
            ));
        };
        let location = location(doc, item);
        if kind != "integration" {
            warnings.push(ConfigWarning {
                location: Some(location.clone()),
                message: format!(
                    "{key}: type is '{kind}', only 'integration' entries receive send_log logs"
                ),
            });
        }
        let tags = match field(item, "tags") {
            None => Vec::new(),
            Some(node) => string_list(doc, node, &format!("{key}.tags"), true)?,
        };
        let processing_rules = match field(item, "log_processing_rules") {
            None => Vec::new(),
            Some(node) => parse_rules(doc, node, &format!("{key}.log_processing_rules"))?,
        };
        entries.push(LogsEntry {
            source: optional_string("source")?,
            service: optional_string("service")?,
            kind,
            tags,
            processing_rules,
            location,
        });
    }
    Ok(entries)
}
