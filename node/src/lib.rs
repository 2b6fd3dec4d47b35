//! Tether gateway node.
//!
//! # Layout
//! - `config`: the TOML config, `TETHER_…` env overrides, validation naming the bad key.
//! - `auth`: JWT verification per tenant (inline keys, JWKS), admin tokens, minting for dev.
//! - `perms`: the `sub:`/`pub:` permission grammar and channel matching.

pub mod auth;
pub mod config;
pub mod perms;
