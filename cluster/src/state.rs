//! `RegistryState`: what the registry remembers, and the read helpers the node uses.
//!
//! Every map is a `BTreeMap` (or `BTreeSet`) so iteration order, event session lists and the
//! encoded snapshot are identical on every node. Mutation is `pub(crate)`: only `apply`
//! changes the state, so the secondary index cannot drift from the session table.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::command::{ClientInfo, Denial, SessionRef};
use crate::tenant::TenantConfig;

mod idp;

/// A tenant as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub config: TenantConfig,
    pub enabled: bool,
}

/// Per-user revocation and permission state. Created on demand by the commands that need it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Tokens with `iat` (seconds) below this are dead (logout everywhere).
    pub not_before: Option<u64>,
    /// Permission override; `None` means "use the token's claims".
    pub permissions: Option<Vec<String>>,
    /// Log index of the last permission change; 0 if never changed.
    pub perms_version: u64,
}

/// A live session, admitted by an `OpenSession` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: String,
    pub tenant: String,
    pub user: String,
    pub jti: Option<String>,
    /// Token `iat` (seconds).
    pub iat: u64,
    /// Token `exp` (seconds).
    pub exp: u64,
    /// Node that owns the connection.
    pub node: NodeId,
    pub client: ClientInfo,
    pub act: Option<String>,
    /// The IdP session id its current token carried (the tenant's `idp.sid_claim`).
    pub sid: Option<String>,
    /// Entry time of the admitting `OpenSession`.
    pub opened_at_ms: u64,
    /// Bumped by every `BindSession`: the owner with the highest epoch is the only owner.
    pub epoch: u64,
    /// SHA-256 (hex) of the current resume token; the token itself is never stored.
    pub resume_hash: String,
    /// Set while no connection holds the session: resumable until this entry time (ms).
    pub detached_until_ms: Option<u64>,
}

/// A revoked session id; kept so a resume of that id is refused on any node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub tenant: String,
    pub user: String,
    /// Entry time of the revocation.
    pub at_ms: u64,
    /// Why the session ended: `SessionRevoked`, `LoggedOut` or `TokenRevoked`. A resume of the
    /// id is refused with the matching close code (4004 or 4005).
    pub cause: Denial,
}

/// The replicated registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryState {
    tenants: BTreeMap<String, TenantRecord>,
    users: BTreeMap<(String, String), UserRecord>,
    sessions: BTreeMap<String, SessionRecord>,
    tombstones: BTreeMap<String, Tombstone>,
    /// (tenant, jti) → token `exp` (seconds).
    revoked_jtis: BTreeMap<(String, String), u64>,
    /// (tenant, user, session_id) of every live session: the user → sessions index.
    /// Derived from `sessions`; maintained only by `insert_session`/`remove_session`.
    by_user: BTreeSet<(String, String, String)>,
    /// (tenant, IdP sid, session_id) of every live session whose token carried a sid.
    /// Derived like `by_user`.
    by_sid: BTreeSet<(String, String, String)>,
    /// (tenant, IdP sid) logged out at the IdP → denied until this entry time (ms).
    ended_sids: BTreeMap<(String, String), u64>,
    /// (tenant, jti) of every IdP signal applied → kept until this time (seconds), so a
    /// replay is refused.
    idp_jtis: BTreeMap<(String, String), u64>,
}

impl RegistryState {
    pub fn tenant(&self, tenant: &str) -> Option<&TenantRecord> {
        self.tenants.get(tenant)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &TenantRecord> {
        self.tenants.values()
    }

    /// The admission rules that do not depend on the session id: tenant exists and is
    /// enabled, the token is not older than the user's logout, its jti is not deny-listed,
    /// and the IdP session it belongs to (`sid`) was not logged out.
    /// `OpenSession` runs exactly this inside apply; the node runs it before proposing (and on
    /// refresh/resume) against its local copy.
    pub fn check_admission(
        &self,
        tenant: &str,
        user: &str,
        iat: u64,
        jti: Option<&str>,
        sid: Option<&str>,
    ) -> Result<(), Denial> {
        let record = self.tenants.get(tenant).ok_or(Denial::UnknownTenant)?;
        if !record.enabled {
            return Err(Denial::TenantDisabled);
        }
        if self
            .user_not_before(tenant, user)
            .is_some_and(|nb| iat < nb)
        {
            return Err(Denial::LoggedOut);
        }
        if jti.is_some_and(|jti| self.is_jti_revoked(tenant, jti)) {
            return Err(Denial::TokenRevoked);
        }
        if sid.is_some_and(|sid| self.is_sid_ended(tenant, sid)) {
            return Err(Denial::IdpSessionEnded);
        }
        Ok(())
    }

    pub fn session(&self, session_id: &str) -> Option<&SessionRecord> {
        self.sessions.get(session_id)
    }

    pub fn is_session_revoked(&self, session_id: &str) -> bool {
        self.tombstones.contains_key(session_id)
    }

    pub fn tombstone(&self, session_id: &str) -> Option<&Tombstone> {
        self.tombstones.get(session_id)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions that no connection holds (resumable until their window ends).
    pub fn detached_count(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| s.detached_until_ms.is_some())
            .count()
    }

    /// The permission override of a user and its version, if one is set.
    pub fn user_permissions(&self, tenant: &str, user: &str) -> Option<(&[String], u64)> {
        let record = self.user(tenant, user)?;
        record
            .permissions
            .as_deref()
            .map(|p| (p, record.perms_version))
    }

    /// Version of the user's permissions (0 = never changed), so a connection can tell
    /// whether the permissions it holds are current.
    pub fn user_perms_version(&self, tenant: &str, user: &str) -> u64 {
        self.user(tenant, user).map_or(0, |u| u.perms_version)
    }

    pub fn user_not_before(&self, tenant: &str, user: &str) -> Option<u64> {
        self.user(tenant, user).and_then(|u| u.not_before)
    }

    pub fn is_jti_revoked(&self, tenant: &str, jti: &str) -> bool {
        self.revoked_jtis
            .contains_key(&(tenant.to_owned(), jti.to_owned()))
    }

    pub fn sessions_of_user(&self, tenant: &str, user: &str) -> Vec<&SessionRecord> {
        self.session_ids_of_user(tenant, user)
            .into_iter()
            .filter_map(|id| self.sessions.get(&id))
            .collect()
    }

    pub fn sessions_of_tenant(&self, tenant: &str) -> Vec<&SessionRecord> {
        self.session_ids_of_tenant(tenant)
            .into_iter()
            .filter_map(|id| self.sessions.get(&id))
            .collect()
    }

    fn user(&self, tenant: &str, user: &str) -> Option<&UserRecord> {
        self.users.get(&(tenant.to_owned(), user.to_owned()))
    }

    // ---- crate-internal: used by `apply` only ----

    pub(crate) fn session_ids_of_user(&self, tenant: &str, user: &str) -> Vec<String> {
        let start = (tenant.to_owned(), user.to_owned(), String::new());
        self.by_user
            .range(start..)
            .take_while(|(t, u, _)| t == tenant && u == user)
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    pub(crate) fn session_ids_of_tenant(&self, tenant: &str) -> Vec<String> {
        let start = (tenant.to_owned(), String::new(), String::new());
        self.by_user
            .range(start..)
            .take_while(|(t, _, _)| t == tenant)
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    /// The user's sessions that hold a connection (not detached), except `except`.
    pub(crate) fn attached_sessions_of_user(
        &self,
        tenant: &str,
        user: &str,
        except: &str,
    ) -> usize {
        self.sessions_of_user(tenant, user)
            .into_iter()
            .filter(|s| s.detached_until_ms.is_none() && s.session_id != except)
            .count()
    }

    /// The user's detached sessions, oldest first: by the end of their resume window, then
    /// by id, so every node picks the same ones.
    pub(crate) fn detached_sessions_of_user(&self, tenant: &str, user: &str) -> Vec<SessionRef> {
        let mut detached: Vec<(u64, &SessionRecord)> = self
            .sessions_of_user(tenant, user)
            .into_iter()
            .filter_map(|s| s.detached_until_ms.map(|until| (until, s)))
            .collect();
        detached.sort_by(|a, b| (a.0, &a.1.session_id).cmp(&(b.0, &b.1.session_id)));
        detached
            .into_iter()
            .map(|(_, s)| SessionRef {
                session_id: s.session_id.clone(),
                node: s.node,
            })
            .collect()
    }

    pub(crate) fn put_tenant(&mut self, config: TenantConfig) {
        // Replacing a tenant's config must not re-enable a disabled tenant.
        let enabled = self.tenants.get(&config.id).is_none_or(|t| t.enabled);
        self.tenants
            .insert(config.id.clone(), TenantRecord { config, enabled });
    }

    pub(crate) fn set_tenant_enabled(&mut self, tenant: &str, enabled: bool) -> bool {
        match self.tenants.get_mut(tenant) {
            Some(record) => {
                record.enabled = enabled;
                true
            }
            None => false,
        }
    }

    pub(crate) fn has_tenant(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant)
    }

    /// Removes the tenant with its users and deny-listed jtis. Live sessions are removed by
    /// the caller first (so it can report them); tombstones stay until they expire so a
    /// revoked session id stays refused even if the tenant is re-created.
    pub(crate) fn remove_tenant(&mut self, tenant: &str) -> bool {
        if self.tenants.remove(tenant).is_none() {
            return false;
        }
        self.users.retain(|(t, _), _| t != tenant);
        self.revoked_jtis.retain(|(t, _), _| t != tenant);
        // Kept like tombstones: a re-created tenant must not readmit a logged-out IdP
        // session or accept a replayed signal.
        true
    }

    /// The user's record, created empty if the user was never seen.
    pub(crate) fn user_mut(&mut self, tenant: &str, user: &str) -> &mut UserRecord {
        self.users
            .entry((tenant.to_owned(), user.to_owned()))
            .or_default()
    }

    /// Inserts or replaces a session (a replacement may carry another sid).
    pub(crate) fn insert_session(&mut self, record: SessionRecord) {
        if let Some(old) = self.sessions.get(&record.session_id)
            && old.sid != record.sid
        {
            self.unindex_sid(&old.tenant.clone(), old.sid.clone(), &record.session_id);
        }
        self.by_user.insert((
            record.tenant.clone(),
            record.user.clone(),
            record.session_id.clone(),
        ));
        if let Some(sid) = &record.sid {
            self.by_sid.insert((
                record.tenant.clone(),
                sid.clone(),
                record.session_id.clone(),
            ));
        }
        self.sessions.insert(record.session_id.clone(), record);
    }

    pub(crate) fn remove_session(&mut self, session_id: &str) -> Option<SessionRecord> {
        let record = self.sessions.remove(session_id)?;
        self.by_user.remove(&(
            record.tenant.clone(),
            record.user.clone(),
            record.session_id.clone(),
        ));
        self.unindex_sid(&record.tenant, record.sid.clone(), session_id);
        Some(record)
    }

    fn unindex_sid(&mut self, tenant: &str, sid: Option<String>, session_id: &str) {
        if let Some(sid) = sid {
            self.by_sid
                .remove(&(tenant.to_owned(), sid, session_id.to_owned()));
        }
    }

    pub(crate) fn add_tombstone(&mut self, session_id: &str, tombstone: Tombstone) {
        self.tombstones.insert(session_id.to_owned(), tombstone);
    }

    pub(crate) fn revoke_jti(&mut self, tenant: &str, jti: &str, exp: u64) {
        let key = (tenant.to_owned(), jti.to_owned());
        // Two revocations of one jti keep the later expiry: never shorten a deny-listing.
        let entry = self.revoked_jtis.entry(key).or_insert(exp);
        *entry = (*entry).max(exp);
    }

    /// Ids of live sessions holding `jti` in `tenant`.
    pub(crate) fn session_ids_with_jti(&self, tenant: &str, jti: &str) -> Vec<String> {
        self.session_ids_of_tenant(tenant)
            .into_iter()
            .filter(|id| self.sessions.get(id).and_then(|s| s.jti.as_deref()) == Some(jti))
            .collect()
    }

    /// Drops deny-list entries for which `keep(exp)` is false; returns how many.
    pub(crate) fn retain_jtis(&mut self, keep: impl Fn(u64) -> bool) -> usize {
        let before = self.revoked_jtis.len();
        self.revoked_jtis.retain(|_, exp| keep(*exp));
        before - self.revoked_jtis.len()
    }

    /// Drops tombstones for which `keep` is false; returns how many.
    pub(crate) fn retain_tombstones(&mut self, keep: impl Fn(&Tombstone) -> bool) -> usize {
        let before = self.tombstones.len();
        self.tombstones.retain(|_, t| keep(t));
        before - self.tombstones.len()
    }

    /// Ids of live sessions matching `pred`.
    pub(crate) fn session_ids_where(&self, pred: impl Fn(&SessionRecord) -> bool) -> Vec<String> {
        self.sessions
            .values()
            .filter(|s| pred(s))
            .map(|s| s.session_id.clone())
            .collect()
    }
}
