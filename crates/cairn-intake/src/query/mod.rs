//! Datadog's log search syntax (parsed by `cairn-query`) translated into parameterised SQL.

mod sql;

pub use cairn_query::{parse, split_path_text, CmpOp, Field, Node, Piece, QueryError, Span, Value};
pub use sql::{
    dotted_path, glob_matches, has_text, json_path as json_path_of, only_reserved, to_sql, Sql,
    TextMode,
};
