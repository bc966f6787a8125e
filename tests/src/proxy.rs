//! A TCP proxy that can be cut and restored, to simulate a database outage for one test without touching the shared
//! Postgres. While cut, it resets every open connection and refuses new ones.
//!
//! It also reads what the clients send Postgres (the frontend half of the wire protocol) and records every round trip:
//! each `Query` (simple protocol) and each `Sync` (the end of an extended-protocol batch: `Parse`/`Bind`/`Execute`)
//! is a point where the client waits for the server's `ReadyForQuery`. A `Sync` with nothing before it is sqlx's
//! connection test ("ping"), counted apart. Only unencrypted connections can be read: route a client with
//! [`TcpProxy::route_readable`] to count its round trips. It can also slow the network down
//! ([`TcpProxy::start_with_latency`]), for benchmarks of what round trips cost when the database is not on the same
//! machine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

pub struct TcpProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    stop: tokio_util::sync::CancellationToken,
    traffic: Arc<Mutex<Traffic>>,
}

/// What the proxy's clients asked Postgres for since the last [`TcpProxy::take_round_trips`].
#[derive(Debug, Default)]
struct Traffic {
    round_trips: Vec<String>,
    pings: usize,
}

impl TcpProxy {
    /// Starts forwarding 127.0.0.1:PORT to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_with_latency(target, Duration::ZERO).await
    }

    /// Starts forwarding 127.0.0.1:PORT to `target`, delivering every chunk `latency` after it arrived, in both
    /// directions (a network with a round-trip time of twice `latency`; tokio's timers round it to milliseconds).
    pub async fn start_with_latency(target: SocketAddr, latency: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("cannot bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let stop = tokio_util::sync::CancellationToken::new();
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let (up2, gen2, stop2, traffic2) = (up.clone(), generation.clone(), stop.clone(), traffic.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop2.cancelled() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = gen2.subscribe();
                let traffic = traffic2.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let _ = server.set_nodelay(true);
                    let _ = client.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let mut reader = FrontendReader::default();
                    let upstream = pump(client_read, server_write, latency, |bytes| reader.feed(bytes, &traffic));
                    let downstream = pump(server_read, client_write, latency, |_| {});
                    tokio::select! {
                        _ = async { tokio::join!(upstream, downstream) } => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, up, generation, stop, traffic }
    }

    /// A proxy in front of the test cluster (the Postgres of `TEST_ADMIN_DATABASE_URL`).
    pub async fn to_postgres() -> Self {
        Self::start(crate::database::postgres_address()).await
    }

    /// [`TcpProxy::to_postgres`] over a slower network (see [`TcpProxy::start_with_latency`]).
    pub async fn to_postgres_with_latency(latency: Duration) -> Self {
        Self::start_with_latency(crate::database::postgres_address(), latency).await
    }

    /// `database_url` (a URL of the test cluster) through this proxy: the same user, password and database, the
    /// proxy's address.
    pub fn route(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(database_url).expect("not a database URL");
        url.set_host(Some("127.0.0.1")).expect("cannot set the proxy's host");
        url.set_port(Some(self.port)).expect("cannot set the proxy's port");
        url.to_string()
    }

    /// [`TcpProxy::route`] without TLS (`sslmode=disable`), so that the proxy can read the round trips it counts.
    pub fn route_readable(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(&self.route(database_url)).expect("not a database URL");
        let kept: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != "sslmode").collect();
        url.query_pairs_mut().clear().extend_pairs(kept).append_pair("sslmode", "disable");
        url.to_string()
    }

    /// Resets every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// The round trips clients made (over [`TcpProxy::route_readable`] connections) since the last call, oldest
    /// first, each named by its statement: the SQL of a `Query`, or of the statement an extended batch parsed or
    /// bound. sqlx's pings are not among them (see [`TcpProxy::take_pings`]).
    pub fn take_round_trips(&self) -> Vec<String> {
        std::mem::take(&mut self.traffic.lock().unwrap().round_trips)
    }

    /// How many pings (a `Sync` on its own) clients sent since the last call.
    pub fn take_pings(&self) -> usize {
        std::mem::take(&mut self.traffic.lock().unwrap().pings)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Copies `from` to `to` until either end closes, showing each chunk to `inspect` as it arrives and delivering it
/// `latency` later (in order).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, latency: Duration, mut inspect: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 16 * 1024];
    if latency.is_zero() {
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            inspect(&buf[..n]);
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    } else {
        let (chunks, mut delivered) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let reading = async move {
            while let Ok(n @ 1..) = from.read(&mut buf).await {
                inspect(&buf[..n]);
                if chunks.send((Instant::now() + latency, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        };
        let writing = async {
            while let Some((due, chunk)) = delivered.recv().await {
                tokio::time::sleep_until(due).await;
                if to.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(reading, writing);
    }
    let _ = to.shutdown().await;
}

/// Splits one connection's client-to-server bytes into frontend messages and records its round trips.
#[derive(Default)]
struct FrontendReader {
    buffered: Vec<u8>,
    /// Past the startup message: every message is a type byte and a length.
    started: bool,
    /// TLS was negotiated: nothing more can be read.
    opaque: bool,
    /// The SQL of the connection's named prepared statements.
    statements: HashMap<String, String>,
    /// The statement of the extended-protocol batch under way, once it has a message.
    batch: Option<String>,
}

impl FrontendReader {
    fn feed(&mut self, bytes: &[u8], traffic: &Mutex<Traffic>) {
        if self.opaque {
            return;
        }
        self.buffered.extend_from_slice(bytes);
        loop {
            if !self.started {
                // An SSLRequest answered with TLS: the next bytes are a TLS record (0x16, handshake).
                if self.buffered.first() == Some(&0x16) {
                    self.opaque = true;
                    self.buffered.clear();
                    return;
                }
                let Some(length) = self.buffered.get(..4).map(|b| be_u32(b) as usize) else { return };
                if self.buffered.len() < length.max(8) {
                    return;
                }
                // 196608: protocol 3.0, the startup message proper; the others (SSLRequest, GSSENCRequest,
                // CancelRequest) come before it or alone.
                self.started = be_u32(&self.buffered[4..8]) == 196_608;
                self.buffered.drain(..length.max(8));
                continue;
            }
            let Some(length) = self.buffered.get(1..5).map(|b| be_u32(b) as usize) else { return };
            if self.buffered.len() < 1 + length {
                return;
            }
            let message: Vec<u8> = self.buffered.drain(..1 + length).collect();
            self.read(message[0], &message[5..], traffic);
        }
    }

    fn read(&mut self, kind: u8, body: &[u8], traffic: &Mutex<Traffic>) {
        let mut strings = body.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
        match kind {
            b'Q' => {
                let sql = strings.next().unwrap_or_default();
                traffic.lock().unwrap().round_trips.push(sql);
                self.batch = None;
            }
            b'P' => {
                let (name, sql) = (strings.next().unwrap_or_default(), strings.next().unwrap_or_default());
                self.statements.insert(name, sql.clone());
                self.batch.get_or_insert(sql);
            }
            b'B' => {
                let (_portal, name) = (strings.next(), strings.next().unwrap_or_default());
                let sql = self.statements.get(&name).cloned().unwrap_or_else(|| format!("<statement {name}>"));
                self.batch.get_or_insert(sql);
            }
            b'S' => match self.batch.take() {
                Some(sql) => traffic.lock().unwrap().round_trips.push(sql),
                None => traffic.lock().unwrap().pings += 1,
            },
            // Describe, Execute, Close, Flush... belong to the batch under way; Terminate and the rest end nothing.
            b'D' | b'E' | b'C' | b'H' => {
                self.batch.get_or_insert_with(String::new);
            }
            _ => {}
        }
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}
