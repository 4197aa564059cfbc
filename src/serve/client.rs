//! Who is at the other end of a request: the client's address and whether
//! it came over https.
//!
//! Behind an ingress every connection comes from the ingress's address,
//! so limits per client would be one limit for everybody. The address a
//! proxy puts in `X-Forwarded-For` (and the scheme in `X-Forwarded-Proto`)
//! is believed only from a peer named by `--trusted-proxy`: a client
//! talking to `serve` directly can write any header it likes.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{Error, Result};

/// The networks of the proxies in front of `serve` (`--trusted-proxy`).
#[derive(Debug, Clone, Default)]
pub struct Proxies(Vec<(IpAddr, u8)>);

impl Proxies {
    /// `10.0.0.0/8`, `fd00::/8`, or one address.
    pub fn parse(networks: &[String]) -> Result<Proxies> {
        let mut out = Vec::new();
        for text in networks {
            let bad = || {
                Error::usage(format!(
                    "--trusted-proxy {:?} is not an address or a network; use e.g. 10.0.0.0/8 or 192.0.2.7",
                    crate::text::printable(text)
                ))
            };
            let (address, bits) = match text.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (text.as_str(), None),
            };
            let address: IpAddr = address.trim().parse().map_err(|_| bad())?;
            let most = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits.trim().parse::<u8>().map_err(|_| bad())?,
                None => most,
            };
            if bits > most {
                return Err(bad());
            }
            // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8, as
            // peers are compared (`canonical`).
            let (address, bits) = match address {
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) if bits >= 96 => (IpAddr::V4(v4), bits - 96),
                    Some(_) => return Err(bad()),
                    None => (address, bits),
                },
                v4 => (v4, bits),
            };
            out.push((address, bits));
        }
        Ok(Proxies(out))
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0
            .iter()
            .any(|(network, bits)| within(address, *network, *bits))
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) as the IPv4 one.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

fn within(address: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (a, n, width) = match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    // `parse` keeps bits within the width.
    let Some(shift) = u32::checked_sub(width, u32::from(bits)) else {
        return false;
    };
    if shift >= 128 {
        return true;
    }
    (a >> shift) == (n >> shift)
}

/// The request's client, as `identify` found it.
#[derive(Debug, Clone)]
pub struct Client {
    pub address: IpAddr,
    /// The reader's browser talks https to `serve` or to the proxy in
    /// front of it: cookies get `Secure` and the `__Host-` prefix.
    pub https: bool,
}

/// The client of a request from `peer`: the right-most address of
/// `X-Forwarded-For` that is not a trusted proxy's, when `peer` is one;
/// `peer` otherwise.
pub fn client_of(headers: &HeaderMap, peer: IpAddr, proxies: &Proxies, https: bool) -> Client {
    let peer = canonical(peer);
    if !proxies.trusts(peer) {
        return Client {
            address: peer,
            https,
        };
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut address = peer;
    // From the right: each hop a trusted proxy added; the first that is
    // not a proxy's is the client. An entry that cannot be read ends what
    // can be believed (the last trusted hop is then the client).
    for hop in forwarded.into_iter().rev() {
        let Some(hop) = forwarded_address(hop) else {
            break;
        };
        address = canonical(hop);
        if !proxies.trusts(address) {
            break;
        }
    }
    let proto_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    Client {
        address,
        https: https || proto_https,
    }
}

/// One `X-Forwarded-For` entry: an address, or one with its port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`, as some load balancers write).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(address) = entry.parse() {
        return Some(address);
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    None
}

impl Client {
    /// The address limits count by: an IPv6 client by its /64 (one
    /// client holds a whole /64 and can use any address in it).
    pub fn bucket(&self) -> IpAddr {
        bucket(self.address)
    }
}

/// `address` as limits count it (`Client::bucket`).
pub fn bucket(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !((1u128 << 64) - 1),
        )),
        v4 => v4,
    }
}

/// Puts the request's `Client` in its extensions (before anything reads it).
pub async fn identify(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<super::App>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let client = client_of(
        request.headers(),
        peer,
        &app.config.proxies,
        app.config.public_https(),
    );
    request.extensions_mut().insert(client);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        let proxies = Proxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let forwarded = headers(&[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.4"),
            ("x-forwarded-proto", "https"),
        ]);
        // Straight from a client: its own address, whatever it says.
        let direct = client_of(&forwarded, ip("198.51.100.77"), &proxies, false);
        assert_eq!(direct.address, ip("198.51.100.77"));
        assert!(!direct.https);
        // From the ingress: the right-most address not a proxy's (the
        // left-most is whatever the client wrote).
        let behind = client_of(&forwarded, ip("10.1.2.3"), &proxies, false);
        assert_eq!(behind.address, ip("198.51.100.4"));
        assert!(behind.https);
        // (X-Forwarded-For, the peer, the client found.)
        for (forwarded_for, peer, client) in [
            ("203.0.113.9, 10.9.9.9", "192.0.2.7", "203.0.113.9"),
            // From the right, up to an entry that cannot be read.
            ("not-an-address, 203.0.113.9", "10.1.2.3", "203.0.113.9"),
            ("203.0.113.9, 10.0.0.5, junk", "10.1.2.3", "10.1.2.3"),
            // With ports, as some load balancers write them.
            (
                "203.0.113.9:4711, [2001:db8::1]:80",
                "10.1.2.3",
                "2001:db8::1",
            ),
        ] {
            let found = client_of(
                &headers(&[("x-forwarded-for", forwarded_for)]),
                ip(peer),
                &proxies,
                false,
            );
            assert_eq!(found.address, ip(client), "{forwarded_for} from {peer}");
        }
        assert!(
            client_of(&HeaderMap::new(), ip("::ffff:10.0.0.1"), &proxies, false)
                .address
                .is_ipv4()
        );
    }

    #[test]
    fn an_ipv4_mapped_proxy_trusted_every_ipv4_client() {
        // `::ffff:127.0.0.1` (128 bits) underflowed to "trust everyone".
        let proxies = Proxies::parse(&["::ffff:127.0.0.1".into()]).unwrap();
        assert!(proxies.trusts("127.0.0.1".parse().unwrap()));
        assert!(!proxies.trusts("198.51.100.7".parse().unwrap()));
        let network = Proxies::parse(&["::ffff:10.0.0.0/104".into()]).unwrap();
        assert!(network.trusts("10.200.0.1".parse().unwrap()));
        assert!(!network.trusts("11.0.0.1".parse().unwrap()));
        assert!(Proxies::parse(&["::ffff:10.0.0.0/90".into()]).is_err());
        assert_eq!(
            bucket("2001:db8::1:2:3:4".parse().unwrap()),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_proxies_are_networks_or_addresses() {
        assert!(Proxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(Proxies::parse(&["ingress".into()]).is_err());
        let all = Proxies::parse(&["0.0.0.0/0".into(), "fd00::/8".into()]).unwrap();
        assert!(all.trusts("8.8.8.8".parse().unwrap()));
        assert!(all.trusts("fd12::1".parse().unwrap()));
        assert!(!all.trusts("2001:db8::1".parse().unwrap()));
    }
}
