//! The node-local `SessionDirectory`: which connection actor owns which session, indexed by
//! user, tenant, token id and channel subscription.
//!
//! Deliberately not ractor's global registry: that is process-global, and tests run several
//! nodes in one process. A std `Mutex` is enough: every operation is a few map updates and
//! never awaits while holding the lock.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use ractor::{ActorId, ActorRef};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::session::ConnMsg;

/// Key of a user: (tenant, user).
type UserKey = (String, String);

#[derive(Clone)]
pub struct DirEntry {
    pub actor: ActorRef<ConnMsg>,
    pub tenant: String,
    pub user: String,
    pub jti: Option<String>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, DirEntry>,
    by_user: HashMap<UserKey, HashSet<String>>,
    by_tenant: HashMap<String, HashSet<String>>,
    by_jti: HashMap<(String, String), HashSet<String>>,
    /// (tenant, channel) → sessions subscribed on this node.
    by_channel: HashMap<(String, String), HashSet<String>>,
    /// session → its channels, to clean `by_channel` on removal.
    channels_of: HashMap<String, HashSet<String>>,
    /// Sessions whose actor here only relays to the session's new owner (after a handover):
    /// still offered messages, not counted as recipients.
    relays: HashSet<String>,
}

/// Who a delivery is for, on this node.
#[derive(Debug, Clone, Copy)]
pub enum Recipients<'a> {
    Channel {
        tenant: &'a str,
        channel: &'a str,
    },
    User {
        tenant: &'a str,
        user: &'a str,
    },
    Session {
        tenant: &'a str,
        session_id: &'a str,
    },
}

pub struct SessionDirectory {
    inner: Mutex<Inner>,
    /// Bumped on every removal so `wait_gone` can wake without polling.
    removals: watch::Sender<u64>,
}

impl Default for SessionDirectory {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            removals: watch::channel(0).0,
        }
    }
}

fn add_index<K: std::hash::Hash + Eq>(map: &mut HashMap<K, HashSet<String>>, k: K, sid: &str) {
    map.entry(k).or_default().insert(sid.to_owned());
}

fn del_index<K: std::hash::Hash + Eq>(map: &mut HashMap<K, HashSet<String>>, k: &K, sid: &str) {
    if let Some(set) = map.get_mut(k) {
        set.remove(sid);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

impl SessionDirectory {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock means a panic mid-update of plain maps; the maps are still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, session_id: &str, entry: DirEntry) {
        let mut g = self.lock();
        add_index(
            &mut g.by_user,
            (entry.tenant.clone(), entry.user.clone()),
            session_id,
        );
        add_index(&mut g.by_tenant, entry.tenant.clone(), session_id);
        if let Some(jti) = &entry.jti {
            add_index(
                &mut g.by_jti,
                (entry.tenant.clone(), jti.clone()),
                session_id,
            );
        }
        g.sessions.insert(session_id.to_owned(), entry);
    }

    /// Records the token id a refreshed session now holds.
    pub fn set_jti(&self, session_id: &str, jti: Option<String>) {
        let mut g = self.lock();
        let Some(entry) = g.sessions.get(session_id).cloned() else {
            return;
        };
        if let Some(old) = &entry.jti {
            del_index(
                &mut g.by_jti,
                &(entry.tenant.clone(), old.clone()),
                session_id,
            );
        }
        if let Some(new) = &jti {
            add_index(
                &mut g.by_jti,
                (entry.tenant.clone(), new.clone()),
                session_id,
            );
        }
        if let Some(e) = g.sessions.get_mut(session_id) {
            e.jti = jti;
        }
    }

    /// Removes `session_id` if its entry is the actor `owner` (an entry a newer actor of the
    /// same session put there stays).
    pub fn remove_actor(&self, session_id: &str, owner: ActorId) {
        {
            let mut g = self.lock();
            if g.sessions
                .get(session_id)
                .is_none_or(|e| e.actor.get_id() != owner)
            {
                return;
            }
            Self::unlink(&mut g, session_id);
        }
        self.removals.send_modify(|n| *n += 1);
    }

    fn unlink(g: &mut Inner, session_id: &str) {
        let Some(entry) = g.sessions.remove(session_id) else {
            return;
        };
        g.relays.remove(session_id);
        del_index(
            &mut g.by_user,
            &(entry.tenant.clone(), entry.user.clone()),
            session_id,
        );
        del_index(&mut g.by_tenant, &entry.tenant, session_id);
        if let Some(jti) = &entry.jti {
            del_index(
                &mut g.by_jti,
                &(entry.tenant.clone(), jti.clone()),
                session_id,
            );
        }
        if let Some(chans) = g.channels_of.remove(session_id) {
            for c in chans {
                del_index(&mut g.by_channel, &(entry.tenant.clone(), c), session_id);
            }
        }
    }

    /// Marks the session's actor as a relay for the session's new owner.
    pub fn set_relay(&self, session_id: &str) {
        let mut g = self.lock();
        if g.sessions.contains_key(session_id) {
            g.relays.insert(session_id.to_owned());
        }
    }

    /// Casts `msg()` to every local recipient; returns how many took it, relays not counted.
    ///
    /// The casts happen under the directory lock: once `remove_actor` returns, every delivery
    /// that found the removed actor is already in its mailbox, so a message the actor queues
    /// to itself after removing itself comes after all of them (the handover relay relies on
    /// this to know when it has passed on everything).
    pub fn deliver(&self, to: Recipients<'_>, msg: impl Fn() -> ConnMsg) -> usize {
        let g = self.lock();
        let ids: Option<&HashSet<String>> = match to {
            Recipients::Channel { tenant, channel } => {
                g.by_channel.get(&(tenant.to_owned(), channel.to_owned()))
            }
            Recipients::User { tenant, user } => {
                g.by_user.get(&(tenant.to_owned(), user.to_owned()))
            }
            Recipients::Session { tenant, session_id } => {
                return match g.sessions.get(session_id) {
                    Some(e) if e.tenant == tenant && e.actor.cast(msg()).is_ok() => {
                        usize::from(!g.relays.contains(session_id))
                    }
                    _ => 0,
                };
            }
        };
        ids.into_iter()
            .flatten()
            .filter(|sid| {
                g.sessions
                    .get(*sid)
                    .is_some_and(|e| e.actor.cast(msg()).is_ok())
                    && !g.relays.contains(*sid)
            })
            .count()
    }

    pub fn subscribe(&self, session_id: &str, tenant: &str, channel: &str) {
        let mut g = self.lock();
        if !g.sessions.contains_key(session_id) {
            return;
        }
        add_index(
            &mut g.by_channel,
            (tenant.to_owned(), channel.to_owned()),
            session_id,
        );
        add_index(&mut g.channels_of, session_id.to_owned(), channel);
    }

    pub fn unsubscribe(&self, session_id: &str, tenant: &str, channel: &str) {
        let mut g = self.lock();
        del_index(
            &mut g.by_channel,
            &(tenant.to_owned(), channel.to_owned()),
            session_id,
        );
        del_index(&mut g.channels_of, &session_id.to_owned(), channel);
    }

    pub fn get(&self, session_id: &str) -> Option<DirEntry> {
        self.lock().sessions.get(session_id).cloned()
    }

    fn collect(&self, ids: Option<&HashSet<String>>, g: &Inner) -> Vec<(String, DirEntry)> {
        ids.into_iter()
            .flatten()
            .filter_map(|sid| g.sessions.get(sid).map(|e| (sid.clone(), e.clone())))
            .collect()
    }

    pub fn sessions_of_user(&self, tenant: &str, user: &str) -> Vec<(String, DirEntry)> {
        let g = self.lock();
        self.collect(g.by_user.get(&(tenant.to_owned(), user.to_owned())), &g)
    }

    pub fn sessions_of_tenant(&self, tenant: &str) -> Vec<(String, DirEntry)> {
        let g = self.lock();
        self.collect(g.by_tenant.get(tenant), &g)
    }

    pub fn sessions_with_jti(&self, tenant: &str, jti: &str) -> Vec<(String, DirEntry)> {
        let g = self.lock();
        self.collect(g.by_jti.get(&(tenant.to_owned(), jti.to_owned())), &g)
    }

    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Channel subscriptions held by this node's sessions.
    pub fn subscription_count(&self) -> usize {
        self.lock().channels_of.values().map(HashSet::len).sum()
    }

    pub fn all(&self) -> Vec<(String, DirEntry)> {
        let g = self.lock();
        g.sessions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Waits until none of `ids` is in the directory or the deadline passes; returns how many
    /// are gone.
    pub async fn wait_gone(&self, ids: &[String], deadline: Instant) -> usize {
        let mut rx = self.removals.subscribe();
        loop {
            let remaining = {
                let g = self.lock();
                ids.iter().filter(|s| g.sessions.contains_key(*s)).count()
            };
            if remaining == 0 {
                return ids.len();
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return ids.len() - remaining,
            }
        }
    }
}
