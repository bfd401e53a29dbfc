//! Datadog's grok parser: rules `name %{matcher:attribute:filter} …`, helper rules, matchers
//! and filters, compiled to regular expressions.

/// A compiled grok parser (match rules in order, with their helper rules).
#[derive(Debug, Clone)]
pub struct Grok {}

/// A rule that cannot be compiled, naming the rule and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grok rule {rule:?} (line {line}): {message}")]
pub struct GrokError {
    pub rule: String,
    pub line: usize,
    pub message: String,
}

impl Grok {
    /// Compiles `match_rules` (one `name pattern` per line) with `support_rules` (helper rules,
    /// same form, referenced as `%{name}`).
    pub fn compile(match_rules: &str, support_rules: &str) -> Result<Grok, GrokError> {
        let _ = (match_rules, support_rules);
        Ok(Grok {})
    }

    /// The first match rule that matches the whole of `input`: its name and the extracted
    /// attributes (a dotted attribute name `a.b` makes nested objects).
    pub fn parse(&self, input: &str) -> Option<(&str, serde_json::Map<String, serde_json::Value>)> {
        let _ = input;
        None
    }
}
