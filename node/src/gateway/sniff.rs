//! One listener, two kinds of request: WebSocket upgrades (`GET /v1/connect`) and the
//! identity-provider endpoints (`POST /v1/idp/…`, PROTOCOL.md "Identity-provider signals"),
//! which must be reachable where clients are. The first bytes of the request line tell
//! them apart; they are read into a small buffer and replayed to whichever side serves the
//! request, so neither needs to know.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What an IdP request line starts with.
const IDP_PREFIX: &[u8] = b"POST /v1/idp/";
const LEN: usize = IDP_PREFIX.len();

/// A stream with the bytes already read from it put back in front.
pub struct Prefixed<S> {
    head: [u8; LEN],
    start: u8,
    end: u8,
    inner: S,
}

/// Which side serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Idp,
    WebSocket,
}

/// Reads just enough of the request line to route it (at most 13 bytes, within `timeout`).
/// A socket that says nothing in time, or closes, is `Err`.
pub async fn sniff<S: AsyncRead + Unpin>(
    mut inner: S,
    timeout: Duration,
) -> io::Result<(Route, Prefixed<S>)> {
    let mut head = [0u8; LEN];
    let mut n = 0;
    let read = async {
        // Stop at the first byte that rules out an IdP request (every upgrade is a GET).
        while n < LEN && head[..n] == IDP_PREFIX[..n] {
            match inner.read(&mut head[n..]).await? {
                0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                k => n += k,
            }
        }
        Ok::<(), io::Error>(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let route = if head[..n] == *IDP_PREFIX {
        Route::Idp
    } else {
        Route::WebSocket
    };
    // `n <= LEN` (13), so it fits a u8.
    let end = u8::try_from(n).unwrap_or(0);
    Ok((
        route,
        Prefixed {
            head,
            start: 0,
            end,
            inner,
        },
    ))
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let rest = &this.head[usize::from(this.start)..usize::from(this.end)];
            let k = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..k]);
            this.start += u8::try_from(k).unwrap_or(0);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn route_of(request: &[u8], chunk: usize) -> (Route, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1024);
        let request = request.to_vec();
        let writer = tokio::spawn(async move {
            for part in request.chunks(chunk) {
                client.write_all(part).await.expect("write");
                tokio::task::yield_now().await;
            }
            client
        });
        let (route, mut stream) = sniff(server, Duration::from_secs(5)).await.expect("sniff");
        drop(writer.await.expect("writer"));
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.expect("read");
        (route, all)
    }

    /// Routed by the request line, in one read or byte by byte, and the stream still reads
    /// the whole request from its first byte.
    #[tokio::test]
    async fn routes_and_replays_the_request() {
        let idp = b"POST /v1/idp/acme/backchannel-logout HTTP/1.1\r\n\r\n";
        let ws = b"GET /v1/connect HTTP/1.1\r\n\r\n";
        let other = b"POST /v1/idq HTTP/1.1\r\n\r\n";
        for chunk in [1, 5, 64] {
            assert_eq!(route_of(idp, chunk).await, (Route::Idp, idp.to_vec()));
            assert_eq!(route_of(ws, chunk).await, (Route::WebSocket, ws.to_vec()));
            assert_eq!(
                route_of(other, chunk).await,
                (Route::WebSocket, other.to_vec())
            );
        }
    }

    /// A socket that closes or stays silent is an error, within the timeout.
    #[tokio::test]
    async fn silence_and_early_close_are_errors() {
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        assert!(sniff(server, Duration::from_secs(5)).await.is_err());
        let (_client, server) = tokio::io::duplex(64);
        let e = sniff(server, Duration::from_millis(50)).await.err();
        assert_eq!(e.map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
    }
}
