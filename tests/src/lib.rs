//! Cross-tool tests live in tests/tests/*.rs.
