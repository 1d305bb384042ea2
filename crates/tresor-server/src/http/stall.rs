//! A connection whose writes must make progress: once a write has waited [`WRITE_STALL`] for the
//! client to take bytes (it stopped reading its answers), the write fails and hyper closes the
//! connection, freeing its slot. Without it, a client that asks and never reads holds one of the
//! bounded number of connections for ever (the header timeout covers only what it sends).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a write may wait for the client to read.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// `io`, with writes that fail once they have waited [`WRITE_STALL`] without progress.
pub(crate) struct StallLimit<I> {
    io: I,
    /// Armed when a write (or flush, or shutdown) first had to wait; cleared by any progress.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> StallLimit<I> {
    pub(crate) fn new(io: I) -> StallLimit<I> {
        StallLimit { io, waiting: None }
    }

    /// What a write that got `poll` answers: progress clears the clock, waiting runs it, and a
    /// wait past [`WRITE_STALL`] is an error.
    fn judge<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(done) => {
                self.waiting = None;
                Poll::Ready(done)
            }
            Poll::Pending => {
                let clock = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
                match clock.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing of the answer for {} s", WRITE_STALL.as_secs()),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for StallLimit<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for StallLimit<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.judge(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.judge(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.judge(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.judge(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_reader_never_takes_fails_after_the_stall_limit_and_progress_resets_it() {
        // A pipe of 64 bytes whose reader reads nothing: the second write waits.
        let (client, server) = tokio::io::duplex(64);
        let mut out = StallLimit::new(server);
        out.write_all(&[1; 64]).await.unwrap();
        let started = tokio::time::Instant::now();
        let e = out.write_all(&[2; 64]).await.err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= WRITE_STALL);
        // A reader that takes bytes in time keeps the writer going however long it all takes.
        let (mut client2, server2) = tokio::io::duplex(64);
        let mut out2 = StallLimit::new(server2);
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < 64 * 8 {
                tokio::time::sleep(WRITE_STALL / 2).await;
                let n = client2.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got.len()
        });
        out2.write_all(&[3; 64 * 8]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 64 * 8);
        drop(client);
    }
}
