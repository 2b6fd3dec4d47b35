//! Permission grammar.
