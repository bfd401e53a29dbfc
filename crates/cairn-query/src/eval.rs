//! Evaluating a parsed query on one log in memory (pipeline filters, category processors).
