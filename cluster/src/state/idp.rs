//! The identity-provider part of the registry state: IdP session ids (`sid`) of live
//! sessions, the ones the IdP logged out, and the `jti`s of signals already applied.

use super::RegistryState;

impl RegistryState {
    /// Whether the IdP logged out session `sid` of `tenant` (denied until the sweep after
    /// its `sid_ttl_secs`).
    pub fn is_sid_ended(&self, tenant: &str, sid: &str) -> bool {
        self.ended_sids
            .contains_key(&(tenant.to_owned(), sid.to_owned()))
    }

    /// Whether an IdP signal with this `jti` was applied for `tenant` and is still kept.
    pub fn is_idp_jti_used(&self, tenant: &str, jti: &str) -> bool {
        self.idp_jtis
            .contains_key(&(tenant.to_owned(), jti.to_owned()))
    }

    /// Ids of the live sessions of `tenant` whose token carried `sid`.
    pub(crate) fn session_ids_with_sid(&self, tenant: &str, sid: &str) -> Vec<String> {
        let start = (tenant.to_owned(), sid.to_owned(), String::new());
        self.by_sid
            .range(start..)
            .take_while(|(t, s, _)| t == tenant && s == sid)
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    /// Denies `sid` until `until_ms`; a second logout never shortens the denial.
    pub(crate) fn end_sid(&mut self, tenant: &str, sid: &str, until_ms: u64) {
        let until = self
            .ended_sids
            .entry((tenant.to_owned(), sid.to_owned()))
            .or_insert(until_ms);
        *until = (*until).max(until_ms);
    }

    pub(crate) fn use_idp_jti(&mut self, tenant: &str, jti: &str, keep_until_secs: u64) {
        self.idp_jtis
            .insert((tenant.to_owned(), jti.to_owned()), keep_until_secs);
    }

    /// The sweep: drops sid denials and signal jtis past their time; returns how many.
    pub(crate) fn expire_idp(&mut self, now_ms: u64) -> usize {
        let before = self.ended_sids.len() + self.idp_jtis.len();
        self.ended_sids.retain(|_, until| *until >= now_ms);
        self.idp_jtis.retain(|_, until| *until >= now_ms / 1000);
        before - self.ended_sids.len() - self.idp_jtis.len()
    }
}
