//! Which handler each message of a connection actor goes to (`ConnectionActor::handle`
//! does the hot ones itself), and whether a socket-end message is about the connection
//! attached now.

use std::sync::Arc;

use ractor::ActorRef;
use tether_protocol::{CloseCode, ServerFrame};
use tokio::time::Instant;
use tracing::Instrument;

use super::ConnMsg;
use super::actor::ConnState;

impl ConnState {
    /// Every message but the hot `Activity` and `Tick` (see `handle`).
    pub(super) async fn dispatch(&mut self, myself: &ActorRef<ConnMsg>, msg: ConnMsg) {
        match msg {
            ConnMsg::Activity => self.last_activity = Instant::now(),
            ConnMsg::Frame(text, _permit) => {
                self.last_activity = Instant::now();
                self.on_text(myself, &text).await;
            }
            ConnMsg::Binary => {
                self.last_activity = Instant::now();
                self.protocol_error(myself, "binary_frame", "binary frames are not supported")
                    .await;
            }
            ConnMsg::TooBig(c) if self.is_current(&c) => {
                self.close(myself, CloseCode::MessageTooBig, false).await
            }
            ConnMsg::ClientGone(c) if self.is_current(&c) => self.lose_connection(myself).await,
            ConnMsg::ClientClosed(c) if self.is_current(&c) => {
                self.close(myself, CloseCode::Normal, false).await
            }
            ConnMsg::TooBig(_) | ConnMsg::ClientGone(_) | ConnMsg::ClientClosed(_) => {}
            ConnMsg::Resume(r) => {
                let span = tracing::info_span!(
                    parent: &r.cause,
                    "session.resume",
                    session_id = %self.auth.session_id,
                    from = "this_node"
                );
                self.on_resume(myself, *r).instrument(span).await
            }
            ConnMsg::TakenOver { epoch } => self.on_taken_over(myself, epoch).await,
            ConnMsg::ResumeWindowOver { epoch } if epoch == self.epoch && self.io.is_none() => {
                self.end(myself, CloseCode::Normal, false).await
            }
            ConnMsg::ResumeWindowOver { .. } => {}
            ConnMsg::Handover {
                epoch,
                after_seq,
                from,
                reply,
                cause,
            } => {
                let span = tracing::info_span!(
                    parent: &cause,
                    "session.handover",
                    session_id = %self.auth.session_id,
                    to = from
                );
                self.on_handover(myself, epoch, after_seq, from, reply)
                    .instrument(span)
                    .await
            }
            ConnMsg::LingerOver => self.end(myself, CloseCode::SessionTakenOver, true).await,
            ConnMsg::Drain { after_ms } => {
                let f = ServerFrame::Reconnect {
                    after_ms,
                    reason: "drain",
                }
                .to_json();
                self.send(myself, f).await;
            }
            ConnMsg::Tick => {
                if let Some(code) = self.on_tick() {
                    self.close(myself, code, false).await
                }
            }
            ConnMsg::Deadline { generation } if generation == self.deadline.generation => {
                self.on_deadline(myself).await
            }
            ConnMsg::Deadline { .. } => {}
            ConnMsg::Deliver(d) => self.on_deliver(myself, &d, false).await,
            ConnMsg::Flush {
                epoch,
                last,
                removed,
                reply,
            } => self.on_flush(myself, epoch, last, removed, reply).await,
            ConnMsg::Flushed(f) => self.on_flushed(myself, *f).await,
            ConnMsg::RelayCheck => self.on_relay_check(myself),
            ConnMsg::Permissions(p) => self.on_permissions(myself, *p).await,
            ConnMsg::Close {
                code,
                registry,
                cause,
            } => {
                if cause.is_none() {
                    self.close(myself, code, registry).await
                } else {
                    let span = tracing::info_span!(
                        parent: &cause,
                        "session.close",
                        session_id = %self.auth.session_id,
                        code = code.code()
                    );
                    self.close(myself, code, registry).instrument(span).await
                }
            }
            ConnMsg::Refreshed(r) => self.on_refreshed(myself, *r).await,
        }
    }

    /// Whether a socket-end message is about the connection attached now.
    pub(super) fn is_current(&self, link: &Arc<super::link::Link>) -> bool {
        self.io.as_ref().is_some_and(|io| io.is(link))
    }
}
