//! Dev certificates (being built).
