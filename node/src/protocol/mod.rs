//! The client wire protocol: the JSON frames as the node reads and writes them; close codes,
//! the subprotocol and field bounds come from the shared `tether-protocol` crate.

pub mod frames;

pub use frames::{ClientFrame, ErrorBody, FrameError, ResumeRequest, ServerFrame};
pub use tether_protocol::{BEARER_SUBPROTOCOL_PREFIX, CONNECT_PATH, CloseCode, SUBPROTOCOL};
