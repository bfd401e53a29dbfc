//! Datadog's log search syntax: a tokeniser, a recursive-descent parser that builds an AST
//! with positions, and a translation of the AST into parameterised SQL.

mod ast;
mod lex;
mod parse;
mod sql;

pub use ast::{CmpOp, Field, Node, Piece, Span, Value};
pub use parse::{parse, split_path_text};
pub use sql::{
    dotted_path, glob_matches, has_text, json_path as json_path_of, only_reserved, to_sql, Sql,
    TextMode,
};

/// A query that does not parse, with the 1-based column (in characters) it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query error at column {column}: {message}")]
pub struct QueryError {
    pub column: usize,
    pub message: String,
}
