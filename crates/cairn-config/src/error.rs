use std::fmt;
use std::path::PathBuf;

/// A position in a config file. `path` is relative to the config directory, which is how
/// operators see the layout (`conf.d/foo.d/conf.yaml`); `line` and `column` are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// Something odd but recoverable in the config: the agent keeps going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every variant renders as one line that names the file (and position when known) and the
/// key, so an operator can fix the config without reading code. No variant ever carries the
/// API key's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: config directory not found", path.display())]
    DirNotFound { path: PathBuf },

    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{location}: invalid YAML: {message}")]
    Syntax { location: Location, message: String },

    #[error("{}: file is empty", path.display())]
    Empty { path: PathBuf },

    #[error("{location}: expected a mapping at the top level, got {got}")]
    TopLevel { location: Location, got: String },

    /// A value present in a file is of the wrong type or out of range.
    #[error("{location}: {key}: {problem}")]
    Invalid {
        location: Location,
        key: String,
        problem: String,
    },

    /// A required key is absent, so there is no position to point at.
    #[error("{}: {key}: {problem}", path.display())]
    Missing {
        path: PathBuf,
        key: String,
        problem: String,
    },

    /// A `DD_*` environment override has a value that does not fit its key.
    #[error("{var}: {problem}")]
    Env { var: String, problem: String },
}

impl ConfigError {
    /// The position of the culprit, when it came from a file and had one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. }
            | ConfigError::Invalid { location, .. }
            | ConfigError::TopLevel { location, .. } => Some(location),
            _ => None,
        }
    }
}
