//! A fault-injecting TCP proxy on 127.0.0.1 for the remote tests: it forwards connections to a
//! server and, for the connections a [`Fault`] picks, resets them, answers `503 Slow Down`, or
//! holds the server's answer back for a while. Stopped when the [`Proxy`] drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What the proxy does to a connection. `every` = N picks connections 1, N+1, 2N+1, … (the first
/// is always hit); N = 1 hits every connection (a server that always fails).
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Reads the request's first bytes, then closes with bytes unread: the kernel sends a RST.
    Reset { every: usize },
    /// Reads the request head and answers `503 Slow Down`, then closes.
    Unavailable { every: usize },
    /// Forwards, but holds back the server's first answer bytes by `delay`.
    Delay { every: usize, delay: Duration },
    /// As `Delay`, for the first `count` connections only.
    DelayFirst { count: usize, delay: Duration },
}

impl Fault {
    fn hits(self, n: usize) -> bool {
        let every = match self {
            Fault::Reset { every } | Fault::Unavailable { every } | Fault::Delay { every, .. } => every,
            Fault::DelayFirst { count, .. } => return n < count,
        };
        n.is_multiple_of(every.max(1))
    }
}

/// A running proxy.
pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    faults: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on a free 127.0.0.1 port and forwards to `127.0.0.1:target`.
    pub fn start(target: u16, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (connections, faults) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, c, f) = (stop.clone(), connections.clone(), faults.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let n = c.fetch_add(1, Ordering::Relaxed);
                        let hit = fault.hits(n);
                        if hit {
                            f.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::spawn(move || handle(client, target, fault, hit));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, stop, connections, faults }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections a fault was applied to so far.
    pub fn faults(&self) -> usize {
        self.faults.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_head(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => return,
        }
    }
}

fn handle(mut client: TcpStream, target: u16, fault: Fault, hit: bool) {
    client.set_nonblocking(false).unwrap();
    match (fault, hit) {
        (Fault::Reset { .. }, true) => {
            let mut b = [0u8; 4];
            let _ = client.read_exact(&mut b); // the rest of the request stays unread: RST on close
        }
        (Fault::Unavailable { .. }, true) => {
            read_head(&mut client);
            let body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(Shutdown::Both);
        }
        (_, hit) => {
            let delay = match fault {
                Fault::Delay { delay, .. } | Fault::DelayFirst { delay, .. } if hit => delay,
                _ => Duration::ZERO,
            };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { return };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(Shutdown::Write);
            });
            let (mut server, mut client) = (server, client);
            let mut first = [0u8; 1];
            if server.read_exact(&mut first).is_err() {
                return;
            }
            std::thread::sleep(delay);
            if client.write_all(&first).is_err() {
                return;
            }
            let _ = std::io::copy(&mut server, &mut client);
            let _ = client.shutdown(Shutdown::Write);
        }
    }
}
