//! `probe:HOST:PORT`: the upstream is up when HOST resolves and a TCP
//! connection to it opens. It knows nothing of the public address.

use super::{GatewayError, Reading, Upstream};

/// Each connection attempt gets `connect_timeout`; one that takes longer
/// counts as down, as a refused one does.
pub async fn poll(
    host: &str,
    port: u16,
    connect_timeout: std::time::Duration,
) -> Result<Reading, GatewayError> {
    let down = |why: String| {
        Reading {
            upstream: Upstream::Down,
            ..Reading::default()
        }
        .with_reason(why)
    };
    let addrs: Vec<_> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Ok(down(format!("cannot resolve {host}: {e}"))),
    };
    let mut last = format!("{host} resolves to no address");
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => last = format!("no answer from {addr} in {connect_timeout:?}"),
            Ok(Ok(_)) => {
                return Ok(Reading {
                    upstream: Upstream::Up,
                    ..Reading::default()
                });
            }
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Ok(down(last))
}
