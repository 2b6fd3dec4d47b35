//! What a connection actor does with client frames and with deliveries from the node.

use std::sync::Arc;

use ractor::ActorRef;
use tether_protocol::{ClientFrame, CloseCode, FrameError, ServerFrame};
use tokio::time::Instant;

use super::actor::ConnState;
use super::close::denial_close_code;
use super::rate::Rate;
use super::{ConnMsg, Delivery, PermsUpdate, RefreshResult};
use crate::audit::AuditRecord;
use crate::auth::AuthError;
use crate::context::RegistryTenants;
use crate::perms::{Permissions, is_valid_channel};
use tether_cluster::command::{Command, RegistryEvent};

impl ConnState {
    pub(super) async fn on_text(&mut self, myself: &ActorRef<ConnMsg>, text: &str) {
        if !self.within_rate(myself).await {
            return;
        }
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(FrameError::NotJson) => {
                return self
                    .protocol_error(myself, "bad_frame", "frame is not valid JSON")
                    .await;
            }
            Err(e) => {
                return self
                    .protocol_error(myself, "bad_frame", &e.to_string())
                    .await;
            }
        };
        match frame {
            ClientFrame::Hello { .. } => {
                self.protocol_error(myself, "unexpected_hello", "already authenticated")
                    .await
            }
            ClientFrame::Subscribe { id, channel } => self.subscribe(myself, id, channel).await,
            ClientFrame::Unsubscribe { id, channel } => {
                self.subs.remove(&channel);
                self.ctx
                    .directory
                    .unsubscribe(&self.auth.session_id, &self.auth.tenant, &channel);
                self.send(myself, ServerFrame::ok(id).to_json()).await;
            }
            ClientFrame::Publish { id, channel, data } => {
                if !is_valid_channel(&channel) {
                    let f = ServerFrame::fail(id, "bad_channel", "invalid channel name");
                    return self.send(myself, f.to_json()).await;
                }
                if !self.perms.can_publish(&channel) {
                    let f = ServerFrame::fail(id, "forbidden", "no pub permission for channel");
                    return self.send(myself, f.to_json()).await;
                }
                let Ok(data) = serde_json::value::to_raw_value(&data) else {
                    let f = ServerFrame::fail(id, "bad_frame", "data is not serializable");
                    return self.send(myself, f.to_json()).await;
                };
                let delivery = Arc::new(Delivery::new(channel, data, false));
                // Subscribers may be on any node: deliver here, fan out off the actor.
                let n = crate::session::dispatch::deliver_channel(
                    &self.ctx,
                    &self.auth.tenant,
                    &delivery,
                );
                let (ctx, tenant) = (self.ctx.clone(), self.auth.tenant.clone());
                tokio::spawn(async move {
                    let target = crate::session::rpc::Target::Channel;
                    crate::session::publish::publish_remote(&ctx, &tenant, target, delivery).await;
                });
                self.ctx.metrics.deliveries.inc_by(n as u64);
                self.send(myself, ServerFrame::ok(id).to_json()).await;
            }
            ClientFrame::Refresh { id, token } => self.start_refresh(myself, id, token),
            // The client has everything up to `seq`: no need to keep it for resume.
            ClientFrame::Ack { seq } => self.outbox.ack(seq),
        }
    }

    async fn subscribe(&mut self, myself: &ActorRef<ConnMsg>, id: u64, channel: String) {
        let reply = if !is_valid_channel(&channel) {
            ServerFrame::fail(id, "bad_channel", "invalid channel name")
        } else if !self.perms.can_subscribe(&channel) {
            ServerFrame::fail(id, "forbidden", "no sub permission for channel")
        } else if !self.subs.contains(&channel)
            && self.subs.len() >= self.ctx.conn.max_subscriptions
        {
            ServerFrame::fail(id, "too_many_subscriptions", "subscription limit reached")
        } else {
            self.ctx
                .directory
                .subscribe(&self.auth.session_id, &self.auth.tenant, &channel);
            self.subs.insert(channel);
            ServerFrame::ok(id)
        };
        self.send(myself, reply.to_json()).await;
    }

    /// Counts a protocol error; `max_protocol_errors` of them close the connection with 4000.
    pub(super) async fn protocol_error(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        code: &str,
        msg: &str,
    ) {
        self.protocol_errors += 1;
        self.ctx.metrics.protocol_errors.inc();
        self.send(myself, ServerFrame::Error { code, message: msg }.to_json())
            .await;
        if self.protocol_errors >= self.ctx.conn.max_protocol_errors {
            self.close(myself, CloseCode::ProtocolError, false).await;
        }
    }

    /// Per-connection message rate: frames over the limit in a one-second window get an error
    /// and are dropped; `rate_limit_strikes` such windows in a row close the connection 4108.
    async fn within_rate(&mut self, myself: &ActorRef<ConnMsg>) -> bool {
        let strikes = match self.rate.offer(Instant::now()) {
            Rate::Within => return true,
            Rate::StillOver => return false,
            Rate::Over { strikes } => strikes,
        };
        self.ctx.metrics.rate_limited.inc();
        if strikes >= self.ctx.conn.rate_limit_strikes {
            self.close(myself, CloseCode::RateLimited, false).await;
            return false;
        }
        let f = ServerFrame::Error {
            code: "rate_limited",
            message: "message rate exceeded",
        };
        self.send(myself, f.to_json()).await;
        false
    }

    /// A message for this session. `relayed`: kept for it by the session's previous owner.
    pub(super) async fn on_deliver(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        d: &Arc<Delivery>,
        relayed: bool,
    ) {
        if !d.direct && !self.subs.contains(&d.channel) {
            return;
        }
        if !relayed && self.upstream.is_some() {
            // Just taken over: the previous owner may still relay older messages.
            return self.hold(myself, d.clone()).await;
        }
        self.accept(myself, d).await;
    }

    /// Numbers and sends a message, or relays it if the session moved on.
    pub(super) async fn accept(&mut self, myself: &ActorRef<ConnMsg>, d: &Arc<Delivery>) {
        if !self.recent.insert(d.id) {
            return; // offered twice while the session moved between nodes
        }
        if let Some(relay) = self.relay.as_mut() {
            // Handed over: kept, in order, for the new owner's next flush.
            relay.keep(d);
            return;
        }
        self.seq += 1;
        let f = ServerFrame::Event {
            seq: self.seq,
            channel: &d.channel,
            data: &d.data,
        }
        .to_json();
        let channel = (!d.direct).then_some(d.channel.as_str());
        self.send_seq(myself, self.seq, channel, f).await;
    }

    pub(super) async fn on_permissions(&mut self, myself: &ActorRef<ConnMsg>, p: PermsUpdate) {
        if p.version < self.auth.perms_version {
            return;
        }
        self.auth.perms_version = p.version;
        self.auth.permissions = p
            .permissions
            .unwrap_or_else(|| self.auth.token_permissions.clone());
        self.reauthorize(myself, true).await;
    }

    /// Re-checks live subscriptions against the current permissions, drops the ones no longer
    /// allowed, and tells the client (always after a registry change, else only if dropped).
    pub(super) async fn reauthorize(&mut self, myself: &ActorRef<ConnMsg>, always_notify: bool) {
        self.perms = Permissions::parse(&self.auth.permissions);
        let dropped: Vec<String> = self
            .subs
            .iter()
            .filter(|c| !self.perms.can_subscribe(c))
            .cloned()
            .collect();
        for c in &dropped {
            self.subs.remove(c);
            self.ctx
                .directory
                .unsubscribe(&self.auth.session_id, &self.auth.tenant, c);
        }
        if always_notify || !dropped.is_empty() {
            self.seq += 1;
            let f = ServerFrame::Permissions {
                seq: self.seq,
                permissions: &self.auth.permissions,
                version: self.auth.perms_version,
                dropped: &dropped,
            }
            .to_json();
            self.send_seq(myself, self.seq, None, f).await;
        }
    }

    /// Verifies a refresh token off the actor (a JWKS fetch may take a while) and reports back.
    /// Verifies a refresh token and commits `RefreshSession`, off the actor (a JWKS fetch or
    /// a commit may take a while); the verdict comes back as `ConnMsg::Refreshed`.
    fn start_refresh(&self, myself: &ActorRef<ConnMsg>, id: u64, token: String) {
        let ctx = self.ctx.clone();
        let me = myself.clone();
        let (tenant, user) = (self.auth.tenant.clone(), self.auth.user.clone());
        let session_id = self.auth.session_id.clone();
        tokio::spawn(async move {
            let outcome = async {
                let t = ctx
                    .auth
                    .verify(&token, &RegistryTenants(&ctx.registry))
                    .await
                    .map_err(|e| {
                        if matches!(e, AuthError::Jwks(_) | AuthError::BadKey(_)) {
                            tracing::warn!(%tenant, error = %e, "refresh: tenant keys unavailable");
                        }
                        ("unauthorized", e.client_message())
                    })?;
                if t.tenant != tenant || t.user != user {
                    let msg = "token is for another tenant or subject".to_owned();
                    return Err(("subject_mismatch", msg));
                }
                // Through the log, like admission: a revocation committed before this entry
                // wins on every node, and the registry record follows the new token.
                let cmd = Command::RefreshSession {
                    session_id,
                    jti: t.jti.clone(),
                    iat: t.iat,
                    exp: t.exp,
                    sid: t.sid.clone(),
                };
                let c = ctx
                    .registry
                    .propose(cmd)
                    .await
                    .map_err(|e| ("unavailable", e.to_string()))?;
                for e in &c.events {
                    if let RegistryEvent::AdmissionDenied { reason, .. } = e {
                        let code = denial_close_code(*reason);
                        return Err(("refused", format!("refused by registry: {}", code.name())));
                    }
                    if let RegistryEvent::NotFound { what } = e {
                        return Err(("refused", format!("refused by registry: no {what}")));
                    }
                }
                Ok(t)
            }
            .await;
            let _ = me.cast(ConnMsg::Refreshed(Box::new(RefreshResult { id, outcome })));
        });
    }

    pub(super) async fn on_refreshed(&mut self, myself: &ActorRef<ConnMsg>, r: RefreshResult) {
        let check = match r.outcome {
            Err(e) => Err(e),
            Ok(t) => {
                let over = self.ctx.registry.read(|s| {
                    s.user_permissions(&t.tenant, &t.user)
                        .map(|(p, v)| (p.to_vec(), v))
                });
                Ok((t, over))
            }
        };
        let a = &self.auth;
        match check {
            Err((code, message)) => {
                self.ctx.audit.emit(AuditRecord {
                    kind: "refresh_fail",
                    tenant: Some(&a.tenant),
                    user: Some(&a.user),
                    session_id: Some(&a.session_id),
                    reason: Some(code),
                    ..Default::default()
                });
                self.send(myself, ServerFrame::fail(r.id, code, &message).to_json())
                    .await;
            }
            Ok((t, over)) => {
                self.ctx.audit.emit(AuditRecord {
                    kind: "refresh_ok",
                    tenant: Some(&a.tenant),
                    user: Some(&a.user),
                    session_id: Some(&a.session_id),
                    actor: t.act.as_deref(),
                    ..Default::default()
                });
                if t.jti != self.auth.jti {
                    self.ctx
                        .directory
                        .set_jti(&self.auth.session_id, t.jti.clone());
                }
                let old_perms = std::mem::take(&mut self.auth.permissions);
                let (permissions, version) = match over {
                    Some((p, v)) => (p, v),
                    None => (t.permissions.clone(), self.auth.perms_version),
                };
                self.auth.jti = t.jti;
                self.auth.iat = t.iat;
                self.auth.exp = t.exp;
                self.auth.act = t.act;
                self.auth.sid = t.sid;
                self.auth.token_permissions = t.permissions;
                self.auth.permissions = permissions;
                self.auth.perms_version = version;
                let changed = old_perms != self.auth.permissions;
                self.arm_expiry();
                self.send(myself, ServerFrame::ok(r.id).to_json()).await;
                self.reauthorize(myself, changed).await;
            }
        }
    }
}
