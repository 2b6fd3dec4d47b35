//! Where a client connection really comes from, and what the process can hold: CIDR sets,
//! the PROXY protocol and forwarded headers of trusted load balancers, the key per-IP
//! limits count by, and the open-file limit.

mod accept_backoff;
mod cidr;
mod fd_limit;
mod forwarded;
mod proxy_protocol;

pub use accept_backoff::AcceptBackoff;
pub use cidr::{Cidr, TrustedProxies, limit_key};
pub use fd_limit::{FdLimit, capacity_warning, nofile_hard_limit, raise_nofile_limit};
pub use forwarded::forwarded_client;
pub use proxy_protocol::{ProxyError, read_proxy_header};
