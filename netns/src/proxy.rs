//! Ports published on `[::1]` (`-p [::1]:8080:80`): a proxy in user space, as Docker's
//! `docker-proxy` does for them. The kernel cannot do it: IPv6 has no `route_localnet`, so a
//! connection from `::1` DNAT'd to a container is dropped on its way out of the host, and the
//! firewall gets no rule for such a port.
//!
//! One small process per container that has such ports (see [`crate::background::claim`]):
//! started by its set-up with its listening sockets bound beforehand, stopped by its teardown,
//! and gone by itself within seconds when the container's record is (a crashed teardown). It
//! connects to the container's IPv4 address, so that any network can publish on `[::1]`. TCP
//! only.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{io, Result};
use crate::explain::Explain;
use crate::store::{Attachment, Store};

/// How often the proxy checks that its container's record still exists.
const CHECK: Duration = Duration::from_secs(5);

fn lock_path(store: &Store, id: &str) -> PathBuf {
    store
        .run_dir()
        .join("proxy")
        .join(format!("{}.lock", crate::short(id)))
}

/// Starts the proxy of `att`'s ports on `[::1]` unless it runs (or there are none).
pub(crate) fn ensure(store: &Store, ex: &Explain, att: &Attachment) -> Result<()> {
    let ports: Vec<_> = att.ports.iter().filter(|m| m.proxied()).collect();
    if ports.is_empty() {
        return Ok(());
    }
    let Some(held) = crate::background::claim(&lock_path(store, &att.id))? else {
        return Ok(());
    };
    let mut routes = Vec::new();
    for m in ports {
        let from = SocketAddr::new(m.host_ip, m.host_port);
        let to = SocketAddr::new(att.address.into(), m.container_port);
        let listener = TcpListener::bind(from).map_err(io(format!("listening on {from}")))?;
        ex.say(|| {
            format!(
                "# minibox relays {from} to {to} in a process of its own (the kernel routes no ::1 source out of the host)"
            )
        });
        routes.push((listener, to));
    }
    let fds: Vec<_> = routes.iter().map(|(l, _)| l.as_raw_fd()).collect();
    let (store, id) = (store.clone(), att.id.clone());
    crate::background::serve(held, &fds, move || serve(&store, &id, routes))
}

/// Stops `id`'s proxy, if it has one; returns once it is gone.
pub(crate) fn stop(store: &Store, id: &str) -> Result<()> {
    crate::background::stop(&lock_path(store, id))
}

/// The proxy's loop (in its own process): a thread per port, two per connection.
fn serve(store: &Store, id: &str, routes: Vec<(TcpListener, SocketAddr)>) {
    for (listener, to) in routes {
        std::thread::spawn(move || {
            for client in listener.incoming() {
                match client {
                    Ok(client) => {
                        std::thread::spawn(move || relay(client, to));
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }
    while store.attachment(id).is_ok_and(|a| a.is_some()) {
        std::thread::sleep(CHECK);
    }
}

/// Copies both ways until each side has closed its half.
fn relay(client: TcpStream, to: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        return;
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pipe(client2, server2));
    pipe(server, client);
    let _ = up.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
