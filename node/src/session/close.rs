//! Ending a connection: close with a code (detaching when it is reconnect-class), end the
//! session, and send the close frame past a full outbound queue; the code a registry
//! refusal closes with.

use ractor::ActorRef;
use tether_cluster::command::Denial;
use tether_protocol::CloseCode;

use super::ConnMsg;
use super::actor::ConnState;
use super::resume::resumable;

impl ConnState {
    /// Ends the connection with `code`. A reconnect-class code (41xx, 1012, 1013) only
    /// detaches the session, which stays resumable; anything else ends it.
    pub(super) async fn close(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        code: CloseCode,
        registry: bool,
    ) {
        if !registry && resumable(code) && !self.ctx.conn.resume_window.is_zero() {
            self.detach(myself, Some(code)).await;
        } else {
            self.end(myself, code, registry).await;
        }
    }

    /// Sends the close frame (if connected), waits for it to be written, then stops the
    /// actor: the session is over.
    pub(super) async fn end(
        &mut self,
        myself: &ActorRef<ConnMsg>,
        code: CloseCode,
        registry: bool,
    ) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some((code, registry));
        self.cancel_timers();
        self.close_socket(code).await;
        myself.stop(Some(code.name().to_owned()));
    }

    /// Sends `code` on the attached socket (bypassing the queue) and waits until it is written.
    pub(super) async fn close_socket(&mut self, code: CloseCode) {
        let Some(io) = self.io.as_ref() else { return };
        // The socket task sends the close frame within close_timeout or gives up on the socket.
        io.close(code, self.ctx.conn.close_timeout * 2).await;
    }

    /// Sends `code` on the attached socket and lets it go without waiting for the frame: a
    /// session taken over by a newer connection keeps its actor, which must stay free to
    /// attach that connection or answer the new owner's handover (a client that stopped
    /// reading would hold it for up to twice `close_timeout`).
    pub(super) fn let_go_of_socket(&mut self, code: CloseCode) {
        if let Some(io) = self.io.take() {
            io.close_and_let_go(code);
            self.ctx.metrics.connection_closed();
        }
    }
}

/// The close code a client gets when the registry refuses its session.
pub fn denial_close_code(d: Denial) -> CloseCode {
    match d {
        Denial::UnknownTenant => CloseCode::Unauthorized,
        Denial::TenantDisabled => CloseCode::TenantDisabled,
        Denial::LoggedOut => CloseCode::LoggedOut,
        Denial::TokenRevoked | Denial::SessionRevoked | Denial::IdpSessionEnded => {
            CloseCode::SessionRevoked
        }
        Denial::SessionExists => CloseCode::ProtocolError,
        Denial::TooManySessions => CloseCode::RateLimited,
        Denial::ResumeUnknown => CloseCode::Unauthorized,
    }
}
