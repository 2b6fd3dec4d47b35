//! The JSON frames of `tether.v1`, defined once for the node and every Rust client.
//!
//! - `client`: what a client sends ([`ClientFrame`]); clients build it, the node parses it
//!   strictly and bounds its fields.
//! - `server`: what the node sends, as the node writes it ([`ServerFrame`], borrowing so a
//!   fan-out serializes without copying the payload).
//! - `message`: the same frames as a client reads them ([`ServerMessage`], owned, tolerant of
//!   new fields and frame types so an older client keeps working against a newer node).

mod client;
mod message;
mod server;

pub use client::{ClientFrame, ClientMeta, FrameError, ResumeRequest};
pub use message::{ServerMessage, Welcome};
pub use server::{ErrorBody, ServerFrame};

#[cfg(test)]
mod tests;
