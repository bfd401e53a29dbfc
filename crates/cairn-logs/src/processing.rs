//! Processing rules (`exclude_at_match`, `include_at_match`, `mask_sequences`) and message
//! truncation. Global rules run first, then the logs entry's own, as in the Datadog Agent.
//! Rules look at the `message` field, which is what a user sees as the log's text.

use std::borrow::Cow;

use cairn_config::{ProcessingRule, RuleKind};

use crate::wire::TRUNCATED_MARKER;

#[derive(Debug, Clone, Default)]
pub struct Processor {
    rules: Vec<ProcessingRule>,
    max_message_size_bytes: usize,
}

/// What the rules decided for one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Keep the log with this message; `truncated` says the size limit cut it.
    Keep {
        message: Cow<'a, str>,
        truncated: bool,
    },
    /// A rule excluded it; the name of that rule.
    Excluded(String),
}

impl Processor {
    pub fn new(
        global: &[ProcessingRule],
        entry: &[ProcessingRule],
        max_message_size_bytes: usize,
    ) -> Self {
        Processor {
            rules: global.iter().chain(entry.iter()).cloned().collect(),
            max_message_size_bytes,
        }
    }

    pub fn apply<'a>(&self, message: &'a str) -> Outcome<'a> {
        let mut msg = Cow::Borrowed(message);
        for rule in &self.rules {
            match rule.kind {
                RuleKind::ExcludeAtMatch => {
                    if rule.pattern.is_match(&msg) {
                        return Outcome::Excluded(rule.name.clone());
                    }
                }
                RuleKind::IncludeAtMatch => {
                    if !rule.pattern.is_match(&msg) {
                        return Outcome::Excluded(rule.name.clone());
                    }
                }
                RuleKind::MaskSequences => {
                    if let Cow::Owned(s) = rule
                        .pattern
                        .replace_all(&msg, rule.replace_placeholder.as_str())
                    {
                        msg = Cow::Owned(s);
                    }
                }
            }
        }
        let max = self.max_message_size_bytes;
        if max > 0 && msg.len() > max {
            let mut cut = max;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut s = String::with_capacity(cut + TRUNCATED_MARKER.len());
            s.push_str(&msg[..cut]);
            s.push_str(TRUNCATED_MARKER);
            return Outcome::Keep {
                message: Cow::Owned(s),
                truncated: true,
            };
        }
        Outcome::Keep {
            message: msg,
            truncated: false,
        }
    }
}
