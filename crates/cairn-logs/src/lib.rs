//! cairn-logs (work in progress)
