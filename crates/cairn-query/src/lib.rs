//! cairn-query: Datadog's log search syntax, shared by the intake (which translates it to SQL)
//! and the pipelines (which evaluate it on one log in memory: pipeline filters, categories).
//!
//! Owns: the tokeniser, the recursive-descent parser that builds an AST with positions, the
//! folding of status spellings, and the in-memory evaluation of a query on one log.
//!
//! Must not: know about SQL, HTTP or storage.

mod ast;
pub mod eval;
mod lex;
mod parse;

pub use ast::{CmpOp, Field, Node, Piece, Span, Value};
pub use parse::{parse, split_path_text, MAX_NESTING, MAX_QUERY_CHARS, MAX_TERMS};

/// A query that does not parse, with the 1-based column (in characters) it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query error at column {column}: {message}")]
pub struct QueryError {
    pub column: usize,
    pub message: String,
}

/// Datadog's status remapper folds the many spellings of a severity into a few values, so that
/// `status:warn` finds `WARNING` too. Statuses are stored folded, and queries fold theirs.
pub fn normalise_status(s: &str) -> String {
    let lower = s.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "emerg" | "emergency" | "panic" => "emerg",
        "alert" => "alert",
        "crit" | "critical" | "fatal" => "critical",
        "err" | "error" => "error",
        "warn" | "warning" => "warn",
        "notice" => "notice",
        "info" | "information" | "informational" => "info",
        "debug" | "trace" => "debug",
        "ok" | "success" => "ok",
        _ => return lower,
    };
    canonical.to_owned()
}
