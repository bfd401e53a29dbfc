/// Character offsets into the query, 0-based, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `*` or an empty query.
    All,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Match {
        field: Field,
        value: Value,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Free text: the message.
    Text,
    Service,
    Source,
    Status,
    Host,
    /// `key:value` searches the tag `key:value`.
    Tag(String),
    /// `@a.b:value` searches the attribute at path `a` → `b`.
    Attr(Vec<String>),
}

impl Field {
    /// Whether the rollup table has this field's column.
    pub fn in_rollup(&self) -> bool {
        matches!(self, Field::Service | Field::Source | Field::Status)
    }

    /// The column of a reserved field, shared by the logs table and the rollup table.
    pub fn column(&self) -> Option<&'static str> {
        match self {
            Field::Service => Some("service"),
            Field::Source => Some("source"),
            Field::Status => Some("status"),
            Field::Host => Some("host"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A word without wildcards.
    Exact(String),
    /// A "quoted phrase".
    Phrase(String),
    /// A word with `*` (any run) or `?` (one character) in it.
    Wildcard(Vec<Piece>),
    /// `field:*`: the field is present.
    Exists,
    Compare(CmpOp, f64),
    /// `[lo TO hi]` (inclusive) or `{lo TO hi}` (exclusive); `None` is an open end (`*`).
    Range {
        low: Option<(f64, bool)>,
        high: Option<(f64, bool)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    AnyRun,
    AnyChar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}
