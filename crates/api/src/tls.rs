//! HTTPS for axum: a listener whose connections come out of a TLS handshake. Handshakes run in
//! tasks of their own, bounded in number and time, so a client that connects and sends nothing
//! holds one slot for [`HANDSHAKE_TIMEOUT`] and never the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use vigil_tls::TlsAcceptor;
use vigil_tls::rustls::ServerConfig;

/// How long a client has to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; later connections wait to be accepted.
const HANDSHAKES_MAX: usize = 1024;

type Stream = vigil_tls::TlsStreamServer<TcpStream>;

pub struct TlsListener {
    handshaken: mpsc::Receiver<(Stream, SocketAddr)>,
    pub local_addr: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` in the background and hands over each connection once its TLS
    /// handshake with `server`'s certificate succeeded.
    pub fn start(tcp: TcpListener, server: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (ready, handshaken) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(server);
        let slots = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (client, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "HTTPS: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, handed) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match handshake(&acceptor, client).await {
                        Ok(stream) => {
                            let _ = handed.send((stream, peer)).await;
                        }
                        Err(reason) => tracing::debug!(%peer, %reason, "HTTPS handshake failed"),
                    }
                });
                if ready.is_closed() {
                    return;
                }
            }
        });
        Ok(Self {
            handshaken,
            local_addr,
        })
    }
}

async fn handshake(acceptor: &TlsAcceptor, client: TcpStream) -> Result<Stream, String> {
    let _ = client.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(client)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (the runtime is shutting down): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
