//! cairn-config (work in progress)
