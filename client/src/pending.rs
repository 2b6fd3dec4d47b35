//! Requests: the [`Command`]s a [`crate::Client`] hands to the driver, and the bounded
//! [`PendingMap`] of requests sent on the current connection and waiting for their `reply`.

use std::collections::HashMap;

use serde_json::Value;
use tether_protocol::{ClientFrame, ErrorBody};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ClientError;

/// What the application asked for.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    Subscribe(String),
    Unsubscribe(String),
    Publish(String, Value),
}

impl Request {
    pub fn frame(&self, id: u64) -> ClientFrame {
        match self {
            Request::Subscribe(c) => ClientFrame::Subscribe {
                id,
                channel: c.clone(),
            },
            Request::Unsubscribe(c) => ClientFrame::Unsubscribe {
                id,
                channel: c.clone(),
            },
            Request::Publish(c, d) => ClientFrame::Publish {
                id,
                channel: c.clone(),
                data: d.clone(),
            },
        }
    }
}

/// The answer channel of an application request.
pub(crate) type Answer = oneshot::Sender<Result<(), ClientError>>;

/// A request from a [`crate::Client`] to the driver.
#[derive(Debug)]
pub(crate) struct Command {
    pub request: Request,
    pub answer: Answer,
    pub deadline: Instant,
}

/// Who waits for a reply.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// An application request.
    App(Request, Answer),
    /// The SDK's own re-subscribe after a non-resumed reconnect.
    Resubscribe(String),
    /// An in-band token refresh carrying this token.
    Refresh(String),
}

/// A finished request, for the connection loop to act on.
#[derive(Debug)]
pub(crate) struct Done {
    pub waiter: Waiter,
    pub result: Result<(), ErrorBody>,
}

/// Requests in flight on one connection, by id.
#[derive(Debug, Default)]
pub(crate) struct PendingMap {
    map: HashMap<u64, (Waiter, Instant)>,
}

impl PendingMap {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn insert(&mut self, id: u64, waiter: Waiter, deadline: Instant) {
        self.map.insert(id, (waiter, deadline));
    }

    /// Takes the waiter of reply `id`, if it is still known.
    pub fn complete(&mut self, id: u64, ok: bool, error: Option<ErrorBody>) -> Option<Done> {
        let (waiter, _) = self.map.remove(&id)?;
        let result = if ok {
            Ok(())
        } else {
            Err(error.unwrap_or_default())
        };
        Some(Done { waiter, result })
    }

    /// Removes the requests past their deadline (application ones get [`ClientError::Timeout`])
    /// and returns the SDK's own ones that timed out.
    pub fn expire(&mut self, now: Instant) -> Vec<Waiter> {
        let late: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, (w, d))| *d <= now || matches!(w, Waiter::App(_, a) if a.is_closed()))
            .map(|(id, _)| *id)
            .collect();
        let mut own = Vec::new();
        for id in late {
            match self.map.remove(&id) {
                Some((Waiter::App(_, answer), _)) => {
                    let _ = answer.send(Err(ClientError::Timeout));
                }
                Some((w, _)) => own.push(w),
                None => {}
            }
        }
        own
    }

    /// The connection is gone: every application request fails with
    /// [`ClientError::ConnectionLost`].
    pub fn fail_all(&mut self) {
        for (_, (waiter, _)) in self.map.drain() {
            if let Waiter::App(_, answer) = waiter {
                let _ = answer.send(Err(ClientError::ConnectionLost));
            }
        }
    }
}
