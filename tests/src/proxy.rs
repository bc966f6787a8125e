//! A TCP proxy that can be cut and restored, to simulate a database outage for one test without touching the shared
//! Postgres. While cut, it resets every open connection and refuses new ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    stop: tokio_util::sync::CancellationToken,
}

impl TcpProxy {
    /// Starts forwarding 127.0.0.1:PORT to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("cannot bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let stop = tokio_util::sync::CancellationToken::new();
        let (up2, gen2, stop2) = (up.clone(), generation.clone(), stop.clone());
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
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, up, generation, stop }
    }

    /// A proxy in front of the test cluster (the Postgres of `TEST_ADMIN_DATABASE_URL`).
    pub async fn to_postgres() -> Self {
        Self::start(crate::database::postgres_address()).await
    }

    /// `database_url` (a URL of the test cluster) through this proxy: the same user, password and database, the
    /// proxy's address.
    pub fn route(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(database_url).expect("not a database URL");
        url.set_host(Some("127.0.0.1")).expect("cannot set the proxy's host");
        url.set_port(Some(self.port)).expect("cannot set the proxy's port");
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
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.generation.send_modify(|g| *g += 1);
    }
}
