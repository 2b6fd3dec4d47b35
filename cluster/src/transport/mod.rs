//! Peer transport (being built).
