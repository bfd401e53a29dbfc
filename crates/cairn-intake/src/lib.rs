//! cairn-intake (work in progress)
