//! cairn-wire: what the agent and the intake must agree on about the bytes between them, and
//! nothing else (no I/O, no Python, no store).
//!
//! `normalize`: the rules that make every log attribute readable back by every query (depth,
//! numbers JSON readers cannot carry, lone surrogates), applied by the intake at ingest and by
//! the agent to a log line the real `datadog-checks-base` hands over, so both store and send
//! the same thing.

pub mod normalize;
