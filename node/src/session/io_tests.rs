//! The socket task against a real WebSocket peer over an in-memory pipe, with an actor that
//! records what the task sends it.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tether_protocol::CloseCode;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::ConnMsg;
use super::io::{IoConfig, spawn_io};
use super::link::{Link, Outbound};
use crate::limits::{LimitSettings, Limits};

/// Forwards every message to the test.
struct Recorder;

impl Actor for Recorder {
    type Msg = ConnMsg;
    type State = mpsc::UnboundedSender<ConnMsg>;
    type Arguments = mpsc::UnboundedSender<ConnMsg>;

    async fn pre_start(
        &self,
        _: ActorRef<ConnMsg>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle(
        &self,
        _: ActorRef<ConnMsg>,
        msg: ConnMsg,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = tx.send(msg);
        Ok(())
    }
}

const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A client gone while a frame was being written ends the socket task right after the
/// actor is told; a close the actor asks for before it reads that news (a takeover, a
/// revocation) returns at once instead of waiting out its bound, so the actor stays free,
/// e.g. to answer a new owner's handover. Paused time: a close that waits would show as
/// four virtual seconds.
#[tokio::test(start_paused = true)]
async fn a_close_after_the_socket_task_ended_does_not_wait() {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (actor, _) = Actor::spawn(None, Recorder, tx).await.expect("actor");
    // One connection at most: the slot the task holds is free again once it ended.
    let limits = Arc::new(Limits::new(LimitSettings {
        max_connections: 1,
        max_per_ip: 1,
        max_pending_per_ip: 1,
        handshakes_per_ip_per_sec: 1,
        ipv6_prefix_len: 64,
    }));
    let cfg = IoConfig {
        queue: 16,
        close_timeout: CLOSE_TIMEOUT,
        tick: Duration::from_secs(3600),
    };
    let io = spawn_io(server, actor.clone(), cfg, limits.reserve().expect("slot"));
    assert!(limits.reserve().is_err(), "the task holds the only slot");

    // The client vanishes as an event is on its way.
    assert!(io.try_send(Outbound::Text("{}".into())).is_ok());
    drop(client_end);
    let told = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert!(
        matches!(told, Ok(Some(ConnMsg::ClientGone(ref l))) if io.is(l)),
        "the actor hears the client is gone"
    );
    // Every task runs until it waits before paused time moves on.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(limits.reserve().is_ok(), "the socket task has ended");

    let started = Instant::now();
    io.close(CloseCode::SessionTakenOver, CLOSE_TIMEOUT * 2)
        .await;
    assert!(
        started.elapsed() < CLOSE_TIMEOUT,
        "a close on an ended connection waited {:?}",
        started.elapsed()
    );
    actor.stop(None);
}

/// A close that is waiting when the socket task ends returns then, not at its bound.
#[tokio::test(start_paused = true)]
async fn a_close_waiting_when_the_task_ends_returns_then() {
    let link = Link::new(4);
    let waiting = {
        let link = link.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            link.close(CloseCode::Normal, CLOSE_TIMEOUT * 2).await;
            started.elapsed()
        })
    };
    tokio::task::yield_now().await;
    link.task_ended();
    let waited = waiting.await.expect("no panic");
    assert!(waited < CLOSE_TIMEOUT, "waited {waited:?}");
    assert!(link.request_close(CloseCode::Normal).is_none());
}
