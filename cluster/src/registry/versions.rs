//! Mixed versions during a rolling upgrade: which peer protocol the cluster as a whole
//! speaks, and the gate that keeps a command newer than some member out of the log (a
//! member that cannot decode an entry would stop applying, and with it its share of the
//! quorum).

use super::{Registry, RegistryError};
use crate::command::Command;
use crate::transport::wire::MIN_PROTOCOL_VERSION;

impl Registry {
    /// The lowest peer protocol among the members: this node's own, and each other
    /// member's as last negotiated on this node's connection to it (so a member that is
    /// down keeps the version it had: a dead voter does not hold new commands back). A
    /// member never reached counts as the oldest version this build speaks: it may be an
    /// old build.
    pub fn cluster_protocol(&self) -> u32 {
        let pool = &self.inner.pool;
        let known = pool.protocols();
        self.members()
            .iter()
            .filter(|m| m.id != self.inner.node_id)
            .map(|m| known.get(&m.id).copied().unwrap_or(MIN_PROTOCOL_VERSION))
            .fold(pool.transport().max_protocol, u32::min)
    }

    /// Refuses a command that some member could not apply yet.
    pub(crate) fn check_supported(&self, command: &Command) -> Result<(), RegistryError> {
        let needs = command.min_protocol();
        if needs <= MIN_PROTOCOL_VERSION {
            return Ok(());
        }
        let speaks = self.cluster_protocol();
        if needs > speaks {
            return Err(RegistryError::Unavailable(format!(
                "{} needs peer protocol {needs} on every member, but one speaks only {speaks}: \
                 finish the rolling upgrade first",
                command.name()
            )));
        }
        Ok(())
    }
}
