//! cairn-checks (work in progress)
