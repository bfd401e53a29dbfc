//! The persistent-cache state (cursors included) of a check, as the buffer replays it.

use std::collections::HashMap;

/// Cache key → value of one check.
pub type CacheState = HashMap<String, String>;
