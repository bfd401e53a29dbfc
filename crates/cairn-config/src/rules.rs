//! Log processing rules, shared by `logs_config.processing_rules` (global) and each
//! integration's `logs[].log_processing_rules`.

use regex::Regex;

use crate::doc::{as_mapping, as_sequence, describe, field, Doc, Node};
use crate::error::{ConfigError, Location};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    ExcludeAtMatch,
    IncludeAtMatch,
    MaskSequences,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::ExcludeAtMatch => "exclude_at_match",
            RuleKind::IncludeAtMatch => "include_at_match",
            RuleKind::MaskSequences => "mask_sequences",
        }
    }
}

const RULE_TYPES: &str = "exclude_at_match, include_at_match, mask_sequences";

#[derive(Debug, Clone)]
pub struct ProcessingRule {
    pub kind: RuleKind,
    pub name: String,
    pub pattern: Regex,
    /// Empty unless `kind` is `MaskSequences`.
    pub replace_placeholder: String,
    /// `None` when the rule came from an environment variable.
    pub location: Option<Location>,
}

/// Parses a rule list; `key` is the list's full key path, used to name culprits.
pub(crate) fn parse_rules(
    doc: &Doc,
    node: &Node,
    key: &str,
) -> Result<Vec<ProcessingRule>, ConfigError> {
    if crate::doc::is_null(node) {
        return Ok(Vec::new());
    }
    let Some(items) = as_sequence(node) else {
        return Err(doc.invalid(
            node,
            key,
            format!("expected a list of rules, got {}", describe(node)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_rule(doc, item, &format!("{key}[{i}]")))
        .collect()
}

fn parse_rule(doc: &Doc, item: &Node, key: &str) -> Result<ProcessingRule, ConfigError> {
    if as_mapping(item).is_none() {
        return Err(doc.invalid(
            item,
            key,
            format!(
                "expected a mapping with type, name and pattern, got {}",
                describe(item)
            ),
        ));
    }
    let required = |name: &str, why: &str| -> Result<(String, &Node), ConfigError> {
        let k = format!("{key}.{name}");
        let Some(node) = field(item, name) else {
            return Err(doc.invalid(item, &k, format!("missing ({why})")));
        };
        match doc.string(node) {
            Ok(Some(s)) => Ok((s, node)),
            Ok(None) => Err(doc.invalid(item, &k, format!("missing ({why})"))),
            Err(problem) => Err(doc.invalid(node, &k, problem)),
        }
    };

    let (type_name, type_node) = required("type", &format!("expected one of {RULE_TYPES}"))?;
    let kind = match type_name.as_str() {
        "exclude_at_match" => RuleKind::ExcludeAtMatch,
        "include_at_match" => RuleKind::IncludeAtMatch,
        "mask_sequences" => RuleKind::MaskSequences,
        _ => {
            return Err(doc.invalid(
                type_node,
                &format!("{key}.type"),
                format!("expected one of {RULE_TYPES}, got {}", describe(type_node)),
            ))
        }
    };
    let (name, _) = required("name", "every rule needs a name")?;
    let (pattern_text, pattern_node) = required("pattern", "every rule needs a regex pattern")?;
    let pattern = Regex::new(&pattern_text).map_err(|e| {
        doc.invalid(
            pattern_node,
            &format!("{key}.pattern"),
            format!("invalid regex: {}", regex_problem(&e)),
        )
    })?;
    let replace_placeholder = if kind == RuleKind::MaskSequences {
        required(
            "replace_placeholder",
            "mask_sequences rules need a replace_placeholder",
        )?
        .0
    } else {
        String::new()
    };
    Ok(ProcessingRule {
        kind,
        name,
        pattern,
        replace_placeholder,
        location: doc.location(item),
    })
}

/// The regex crate renders syntax errors over several lines with a caret diagram; config
/// errors are one line, so keep only the final "error: ..." sentence.
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string);
    line.unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}
