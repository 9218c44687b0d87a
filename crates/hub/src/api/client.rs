//! Who the client is at the network level: its address, through the
//! reverse proxies the hub is told to trust, and whether the `Host` it asked
//! for is one of the hub's own names.
//!
//! Pure functions of the peer address and the headers; the [`identify`]
//! middleware puts a [`Client`] into every request's extensions.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::HubState;
use crate::server::Peer;

/// The client a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the TCP peer's, or the one a trusted proxy
    /// forwarded.
    pub addr: IpAddr,
    /// Whether a trusted proxy forwarded the request: then the TCP peer
    /// being loopback says nothing about the client.
    pub proxied: bool,
}

/// The hub's network-level rules: whom to believe about client addresses,
/// and which names it answers to for browsers.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    pub trusted_proxies: Vec<IpNet>,
    pub allowed_hosts: AllowedHosts,
}

impl NetworkPolicy {
    /// The client behind a request from `peer`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Client {
        client_addr(peer, headers, &self.trusted_proxies)
    }
}

/// Every request learns its [`Client`] here, before routing.
pub async fn identify(
    State(hub): State<Arc<HubState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(peer) = request.extensions().get::<Peer>().copied() {
        let client = hub.network.client(peer.addr.ip(), request.headers());
        request.extensions_mut().insert(client);
    }
    next.run(request).await
}

/// The client's address: the peer's, unless the peer is a trusted proxy.
/// Then the forwarded chain (`Forwarded`, else `X-Forwarded-For`) is read
/// from the right, skipping trusted proxies; the first address that is not
/// one is the client. An unreadable entry stops the walk at the last
/// address known to be true, so a forged header can only name a proxy.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    let peer = canonical(peer);
    if !is_trusted(&peer) {
        return Client {
            addr: peer,
            proxied: false,
        };
    }
    let chain = forwarded_chain(headers);
    if chain.is_empty() {
        return Client {
            addr: peer,
            proxied: false,
        };
    }
    let mut addr = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) => {
                addr = canonical(*ip);
                if !is_trusted(&addr) {
                    break;
                }
            }
            None => break,
        }
    }
    Client {
        addr,
        proxied: true,
    }
}

/// The addresses a request passed through, oldest first; `None` for an
/// entry that is not an address (`unknown`, an obfuscated name, garbage).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    let forwarded = values(header::FORWARDED);
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .flat_map(|v| match v {
                Some(v) => v.split(',').map(forwarded_for).collect(),
                None => vec![None],
            })
            .collect();
    }
    values(header::HeaderName::from_static("x-forwarded-for"))
        .into_iter()
        .flat_map(|v| match v {
            Some(v) => v.split(',').map(|e| parse_node(e.trim())).collect(),
            None => vec![None],
        })
        .collect()
}

/// The `for=` of one `Forwarded` element (RFC 7239).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.rsplit_once(':')
        .and_then(|(ip, port)| port.parse::<u16>().ok().and(ip.parse().ok()))
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The names a browser may use to reach the hub. A page from any other
/// name that resolves to the hub (DNS rebinding) gets no session and no
/// loopback privileges. IP literals and `localhost` are always fine: a page
/// served from them is the hub's own origin anyway.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// `names`: host names (no port), `*.example.org` for any subdomain.
    pub fn new(names: impl IntoIterator<Item = String>) -> AllowedHosts {
        AllowedHosts {
            names: names
                .into_iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether `authority` (a `Host` header: name or address, maybe a port)
    /// names this hub.
    pub fn allows(&self, authority: &str) -> bool {
        let Some(host) = host_part(authority) else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.parse::<IpAddr>().is_ok() || host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        self.names.iter().any(|name| match name.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => *name == host,
        })
    }

    /// Whether the host the request asked for (its `Host` header, or the
    /// HTTP/2 authority) names this hub.
    pub fn allows_request(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        host.is_some_and(|h| self.allows(h))
    }
}

/// The host of an authority, without port or brackets; `None` if malformed.
fn host_part(authority: &str) -> Option<&str> {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(is_port)).then_some(ip);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if is_port(port) => host,
        Some(_) => return None,
        None => authority,
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    ok.then_some(host)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit())
}

/// The host of a URL like `https://hub.example.org:7780/`, for the hub's own
/// names.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map(|(_, a)| a)
        .unwrap_or(authority);
    host_part(authority).map(str::to_string)
}

#[cfg(test)]
mod tests;
