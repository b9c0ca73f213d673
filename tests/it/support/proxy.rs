//! A fault-injecting TCP proxy in front of the broker (RabbitMQ): cut or stall the link without touching the broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward bytes both ways.
    Normal,
    /// Close every connection; accept new ones and close them at once.
    Cut,
    /// Keep connections open but neither read nor forward anything.
    Stalled,
}

/// Counts forwarded connections and wakes waiters when the count grows.
#[derive(Default)]
struct Counter {
    /// Connections accepted and forwarded (not refused while cut).
    accepted: AtomicUsize,
    /// Notified on every increment.
    grew: Notify,
}

/// A TCP proxy on an ephemeral loopback port that forwards to one upstream address.
pub(crate) struct Proxy {
    /// Where clients connect.
    addr: SocketAddr,
    /// The current mode; every connection task watches it. Dropping it stops them all.
    mode: watch::Sender<Mode>,
    /// Connection count.
    counter: Arc<Counter>,
    /// The accept loop; it owns the connection tasks, so aborting it aborts them too.
    listener: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every accepted connection to `upstream`.
    ///
    /// Panics unless `upstream` is a loopback address: the proxy only ever talks to a local broker.
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        assert!(upstream.ip().is_loopback(), "proxy upstream must be a loopback address, got {upstream}");
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind proxy listener");
        let addr = listener.local_addr().expect("proxy listener address");
        let (mode, mode_rx) = watch::channel(Mode::Normal);
        let counter = Arc::new(Counter::default());
        let listener = tokio::spawn(accept_loop(listener, upstream, mode_rx, counter.clone()));
        Proxy { addr, mode, counter, listener }
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An amqp URL through the proxy: `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub(crate) fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.addr.port())
    }

    /// Cut: close every open connection at once (both directions) and refuse new ones (accept then close
    /// immediately) until [`Proxy::restore`].
    pub(crate) fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Stall: keep connections open but stop forwarding bytes in both directions (nothing new is read) until
    /// [`Proxy::restore`]; new connections are accepted but stall too.
    pub(crate) fn stall(&self) {
        self.mode.send_replace(Mode::Stalled);
    }

    /// Back to normal forwarding; new connections work again and stalled ones resume.
    pub(crate) fn restore(&self) {
        self.mode.send_replace(Mode::Normal);
    }

    /// Number of connections accepted so far (so a test can await a reconnect without sleeping).
    ///
    /// Connections refused while cut are not counted, so after a cut the count grows only on a real reconnect.
    pub(crate) fn connections(&self) -> usize {
        self.counter.accepted.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections have been accepted; panics if that takes longer than `timeout`.
    pub(crate) async fn wait_connections(&self, n: usize, timeout: Duration) {
        let reached = tokio::time::timeout(timeout, async {
            loop {
                let grew = self.counter.grew.notified();
                tokio::pin!(grew);
                // Register before checking, so an increment between the check and the await is not missed.
                grew.as_mut().enable();
                if self.connections() >= n {
                    return;
                }
                grew.await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "proxy {}: expected at least {n} connection(s) within {timeout:?}, saw {}",
            self.addr,
            self.connections()
        );
    }
}

impl Drop for Proxy {
    /// Stops the listener task and, with it, every connection task.
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Accepts connections and spawns a relay for each; refuses (closes) them while cut.
async fn accept_loop(listener: TcpListener, upstream: SocketAddr, mode: watch::Receiver<Mode>, counter: Arc<Counter>) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    // Transient accept errors (e.g. too many open files): back off briefly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if *mode.borrow() == Mode::Cut {
                    drop(client);
                    continue;
                }
                counter.accepted.fetch_add(1, Ordering::SeqCst);
                counter.grew.notify_waiters();
                relays.spawn(relay(client, upstream, mode.clone()));
            }
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
}

/// How one direction of a relay ended.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    /// The source closed cleanly; the destination's write side was shut down. The other direction may go on.
    Eof,
    /// Cut, an I/O error, or the proxy was dropped: close the whole connection.
    Abort,
}

/// Connects to `upstream` and copies both ways, obeying `mode`, until both sides finish or the connection is cut.
async fn relay(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if *mode.borrow_and_update() == Mode::Cut {
        return;
    }
    let server = tokio::select! {
        biased;
        () = until_cut(mode.clone()) => return,
        server = TcpStream::connect(upstream) => match server {
            Ok(server) => server,
            Err(_) => return,
        },
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let to_server = pump(client_read, server_write, mode.clone());
    let to_client = pump(server_read, client_write, mode);
    tokio::pin!(to_server, to_client);
    let (mut to_server_done, mut to_client_done) = (false, false);
    while !(to_server_done && to_client_done) {
        // Returning drops both sockets (all four halves), which closes them.
        tokio::select! {
            flow = &mut to_server, if !to_server_done => {
                if flow == Flow::Abort {
                    return;
                }
                to_server_done = true;
            }
            flow = &mut to_client, if !to_client_done => {
                if flow == Flow::Abort {
                    return;
                }
                to_client_done = true;
            }
        }
    }
}

/// Copies `from` to `to` while the mode is normal; stops reading while stalled; aborts when cut.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) -> Flow {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Wait for normal mode; stalled means read nothing at all.
        loop {
            match *mode.borrow_and_update() {
                Mode::Normal => break,
                Mode::Cut => return Flow::Abort,
                Mode::Stalled => {}
            }
            if mode.changed().await.is_err() {
                return Flow::Abort;
            }
        }
        let n = tokio::select! {
            biased;
            changed = mode.changed() => {
                if changed.is_err() {
                    return Flow::Abort;
                }
                continue;
            }
            read = from.read(&mut buf) => match read {
                Ok(0) => {
                    let _ = to.shutdown().await;
                    return Flow::Eof;
                }
                Ok(n) => n,
                Err(_) => return Flow::Abort,
            },
        };
        // Bytes already read are delivered (even if a stall starts meanwhile) unless the link is cut.
        tokio::select! {
            biased;
            () = until_cut(mode.clone()) => return Flow::Abort,
            written = to.write_all(&buf[..n]) => {
                if written.is_err() {
                    return Flow::Abort;
                }
            }
        }
    }
}

/// Resolves once the mode is `Cut` or the proxy is dropped.
async fn until_cut(mut mode: watch::Receiver<Mode>) {
    let _ = mode.wait_for(|mode| *mode == Mode::Cut).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough for anything that must happen on loopback.
    const SOON: Duration = Duration::from_secs(5);
    /// How long to watch for something that must not happen.
    const QUIET: Duration = Duration::from_millis(200);

    /// A local TCP echo server; returns its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    /// Writes `message` and expects it echoed back soon.
    async fn round_trip(stream: &mut TcpStream, message: &[u8]) {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        tokio::time::timeout(SOON, stream.read_exact(&mut back))
            .await
            .expect("echo did not come back in time")
            .expect("echo read failed");
        assert_eq!(back, message);
    }

    /// Expects the proxy to close `stream` soon: a read ends with EOF or an error (reset).
    async fn expect_closed(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(SOON, stream.read(&mut buf)).await.expect("connection was not closed in time");
        assert!(matches!(read, Ok(0) | Err(_)), "expected EOF or an error, read {read:?}");
    }

    /// Expects nothing to arrive on `stream` for a while (asserting the absence of an event).
    async fn expect_silent(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(QUIET, stream.read(&mut buf)).await;
        assert!(read.is_err(), "expected no bytes while stalled, read {read:?}");
    }

    #[tokio::test]
    async fn proxy_forwards_in_normal_mode_and_closes_on_drop() {
        let proxy = Proxy::start(echo_server().await).await;
        assert_eq!(proxy.amqp_url(), format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.addr().port()));
        let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut first, b"hello").await;
        let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.wait_connections(2, SOON).await;
        assert_eq!(proxy.connections(), 2);
        round_trip(&mut second, b"world").await;
        round_trip(&mut first, &vec![7u8; 100_000]).await;
        drop(proxy);
        expect_closed(&mut first).await;
        expect_closed(&mut second).await;
    }

    #[tokio::test]
    async fn proxy_cut_closes_and_refuses_until_restored() {
        let proxy = Proxy::start(echo_server().await).await;
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut open, b"before").await;
        proxy.cut();
        expect_closed(&mut open).await;
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        expect_closed(&mut refused).await;
        assert_eq!(proxy.connections(), 1, "connections refused while cut are not counted");
        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.wait_connections(2, SOON).await;
        round_trip(&mut again, b"after").await;
    }

    #[tokio::test]
    async fn proxy_stall_stops_delivery_until_restored() {
        let proxy = Proxy::start(echo_server().await).await;
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut open, b"before").await;
        proxy.stall();
        open.write_all(b"ping").await.unwrap();
        expect_silent(&mut open).await;
        let mut stalled_new = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.wait_connections(2, SOON).await;
        stalled_new.write_all(b"pong").await.unwrap();
        expect_silent(&mut stalled_new).await;
        proxy.restore();
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut fresh, b"after").await;
        // Stalled connections stayed open and deliver what was held back.
        let mut held = [0u8; 4];
        tokio::time::timeout(SOON, open.read_exact(&mut held)).await.unwrap().unwrap();
        assert_eq!(&held, b"ping");
        tokio::time::timeout(SOON, stalled_new.read_exact(&mut held)).await.unwrap().unwrap();
        assert_eq!(&held, b"pong");
        assert_eq!(proxy.connections(), 3);
    }
}
