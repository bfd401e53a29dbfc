//! The agent's local API (stub).
