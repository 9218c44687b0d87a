//! The FRITZ!Box TR-064 and UniFi providers against local doubles (HTTP and
//! HTTPS on loopback) that serve recorded answers and check credentials the
//! way the real devices do: a FRITZ!Box demands HTTP digest authentication
//! on every action, a UniFi OS console an API key, a controller a login
//! cookie.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, Method, Request, Response, header};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::*;

type Handler = Arc<dyn Fn(&Method, &str, &HeaderMap, &str) -> Response<Full<Bytes>> + Send + Sync>;

fn reply(status: u16, body: impl Into<String>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Full::new(Bytes::from(body.into())))
        .unwrap()
}

/// A self-signed certificate for 127.0.0.1 and its fingerprint.
fn tls_identity() -> (Arc<rustls::ServerConfig>, String) {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let der = key.cert.der().clone();
    let fingerprint = twinbay_proto::join::cert_fingerprint(der.as_ref());
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()),
    );
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], private)
    .unwrap();
    (Arc::new(config), fingerprint)
}

/// Serves `handler` on a loopback port (over TLS with `tls`).
async fn serve(
    handler: Handler,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = String::from_utf8_lossy(&body).to_string();
                            let path = parts
                                .uri
                                .path_and_query()
                                .map(|p| p.as_str())
                                .unwrap_or("/");
                            Ok::<_, Infallible>(handler(&parts.method, path, &parts.headers, &body))
                        }
                    });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(config) => {
                        if let Ok(stream) =
                            tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    (port, task)
}

const REALM: &str = "F!Box SOAP-Auth";
const NONCE: &str = "5E1C7C3B9A0D4F21";

/// Whether `headers` carry a digest answer for `password` (as a FRITZ!Box checks it).
fn digest_ok(headers: &HeaderMap, method: &Method, password: &str) -> bool {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Ok(params) = digest::parse_authorization(auth) else {
        return false;
    };
    let p: HashMap<_, _> = params.into_iter().collect();
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    let challenge = digest::Challenge {
        realm: REALM.into(),
        nonce: NONCE.into(),
        opaque: None,
        algorithm: digest::Algorithm::Md5,
        qop_auth: true,
        stale: false,
    };
    let nc = u32::from_str_radix(get("nc"), 16).unwrap_or(0);
    get("nonce") == NONCE
        && get("realm") == REALM
        && get("response")
            == digest::response(
                &challenge,
                get("username"),
                password,
                method.as_str(),
                get("uri"),
                nc,
                get("cnonce"),
            )
}

/// A FRITZ!Box's TR-064 interface: user `admin`, password `password`.
/// `fault_on` answers that action with a recorded SOAP fault; `huge` pads
/// GetInfo beyond the size cap.
fn fritzbox(password: &'static str, fault_on: Option<&'static str>, huge: bool) -> Handler {
    Arc::new(
        move |method: &Method, path: &str, headers: &HeaderMap, body: &str| {
            if method == Method::GET && path == "/tr64desc.xml" {
                return reply(200, include_str!("testdata/fritzbox-tr64desc.xml"));
            }
            if method != Method::POST {
                return reply(404, "");
            }
            if !digest_ok(headers, method, password) {
                let mut r = reply(401, include_str!("testdata/fritzbox-401.html"));
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    format!(
                        "Digest realm=\"{REALM}\", nonce=\"{NONCE}\", algorithm=MD5, qop=\"auth\""
                    )
                    .parse()
                    .unwrap(),
                );
                return r;
            }
            let action = headers
                .get("soapaction")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split('#').nth(1))
                .map(|a| a.trim_matches('"').to_string())
                .unwrap_or_default();
            if Some(action.as_str()) == fault_on {
                return reply(500, include_str!("testdata/fritzbox-fault-606.xml"));
            }
            match (path, action.as_str()) {
                ("/upnp/control/layer3forwarding", "GetDefaultConnectionService") => reply(
                    200,
                    include_str!("testdata/fritzbox-GetDefaultConnectionService.xml"),
                ),
                ("/upnp/control/wanpppconn1", "GetInfo") if huge => reply(
                    200,
                    include_str!("testdata/fritzbox-WANPPPConnection-GetInfo.xml").replace(
                        "<NewName>",
                        &format!("<NewName>{}", "x".repeat(xml::MAX_BYTES)),
                    ),
                ),
                ("/upnp/control/wanpppconn1", "GetInfo") => reply(
                    200,
                    include_str!("testdata/fritzbox-WANPPPConnection-GetInfo.xml"),
                ),
                ("/upnp/control/wancommonifconfig1", "GetCommonLinkProperties") => reply(
                    200,
                    include_str!("testdata/fritzbox-GetCommonLinkProperties.xml"),
                ),
                ("/upnp/control/wancommonifconfig1", "X_AVM-DE_GetOnlineMonitor")
                    if body.contains("<NewSyncGroupIndex>0</NewSyncGroupIndex>") =>
                {
                    reply(200, include_str!("testdata/fritzbox-GetOnlineMonitor.xml"))
                }
                ("/upnp/control/wandslifconfig1", "GetInfo") => reply(
                    200,
                    include_str!("testdata/fritzbox-WANDSLInterfaceConfig-GetInfo.xml"),
                ),
                _ => reply(500, include_str!("testdata/fritzbox-fault-606.xml")),
            }
        },
    )
}

fn fritz_spec(port: u16, query: &str) -> Spec {
    format!("fritzbox://admin@127.0.0.1:{port}{query}")
        .parse()
        .unwrap()
}

async fn poll_once(spec: &Spec, password: &str) -> Result<Reading, GatewayError> {
    let mut provider = Provider::new(spec, Some(&Secret(password.into())));
    tokio::time::timeout(
        Duration::from_secs(10),
        provider.poll(Duration::from_secs(10)),
    )
    .await
    .expect("a poll within 10 s")
}

#[tokio::test]
async fn tr064_reads_a_fritzbox_with_digest_auth() {
    let (port, task) = serve(fritzbox("password", None, false), None).await;
    let r = poll_once(&fritz_spec(port, ""), "password").await.unwrap();
    assert_eq!(r.public_ip.as_deref(), Some("81.2.69.142"));
    assert_eq!(r.upstream, Upstream::Up);
    assert_eq!(r.uptime_secs, Some(263511));
    assert_eq!(r.device.as_deref(), Some("FRITZ!Box 7590"));
    let link = r.link.unwrap();
    assert_eq!(link.max_down_bps, Some(116_798_000));
    assert_eq!(link.up_bps, Some(2_000_000));
    assert_eq!(link.down_bps, Some(10_000_000));
    let dsl = r.dsl.unwrap();
    assert_eq!(dsl.status, "Up");
    assert_eq!(dsl.down_attainable_bps, Some(131_286_000));
    task.abort();
}

#[tokio::test]
async fn tr064_with_a_wrong_password_fails_and_shows_nothing_stale() {
    let (port, task) = serve(fritzbox("password", None, false), None).await;
    let spec = fritz_spec(port, "");
    let good = poll_once(&spec, "password").await.unwrap();
    let e = poll_once(&spec, "wrong").await.unwrap_err().to_string();
    assert!(e.starts_with("authentication failed"), "{e}");
    assert!(e.contains("\"admin\""), "{e}");
    assert!(
        !e.contains("wrong"),
        "the password is not in the message: {e}"
    );
    // The status after a good poll and then the failed one.
    let s0 = GatewayStatus::new(&spec);
    let (s1, _) = apply(&s0, &mut None, Ok(good), 1);
    let (s2, ev) = apply(&s1, &mut None, Err(e), 2);
    assert_eq!(ev[0].kind, "gateway.unreachable");
    assert!(s2.error.unwrap().contains("authentication failed"));
    assert_eq!((s2.public_ip, s2.link, s2.dsl), (None, None, None));
    assert_eq!(s2.upstream, Upstream::Unknown);
    task.abort();
}

#[tokio::test]
async fn tr064_faults_and_oversized_answers_are_clear_errors() {
    let (port, task) = serve(fritzbox("password", Some("GetInfo"), false), None).await;
    let e = poll_once(&fritz_spec(port, ""), "password")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("GetInfo: SOAP fault")
            && e.contains("606")
            && e.contains("Action Not Authorized"),
        "{e}"
    );
    task.abort();
    let (port, task) = serve(fritzbox("password", None, true), None).await;
    let e = poll_once(&fritz_spec(port, ""), "password")
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::TooLarge(_)), "{e}");
    task.abort();
    // A box without the online monitor or a DSL line still gives the rest.
    let (port, task) = serve(
        fritzbox("password", Some("X_AVM-DE_GetOnlineMonitor"), false),
        None,
    )
    .await;
    let r = poll_once(&fritz_spec(port, ""), "password").await.unwrap();
    assert_eq!(r.link.unwrap().up_bps, None);
    assert_eq!(r.public_ip.as_deref(), Some("81.2.69.142"));
    task.abort();
}

#[tokio::test]
async fn tr064_over_tls_checks_the_certificate() {
    let (server, fingerprint) = tls_identity();
    let (port, task) = serve(fritzbox("password", None, false), Some(server)).await;
    let r = poll_once(
        &fritz_spec(port, &format!("?tls&fingerprint={fingerprint}")),
        "password",
    )
    .await
    .unwrap();
    assert_eq!(r.public_ip.as_deref(), Some("81.2.69.142"));
    // Not the pinned certificate: refused, both fingerprints named.
    let other = format!("sha256:{}", "0".repeat(64));
    let e = poll_once(
        &fritz_spec(port, &format!("?fingerprint={other}")),
        "password",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("TLS:") && e.contains(&fingerprint) && e.contains(&other),
        "{e}"
    );
    // No pin: the system's roots do not know it; the message offers the pin.
    let e = poll_once(&fritz_spec(port, "?tls"), "password")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&fingerprint) && e.contains("?fingerprint="),
        "{e}"
    );
    // Said explicitly: any certificate.
    let r = poll_once(&fritz_spec(port, "?tls&insecure-tls"), "password").await;
    assert!(r.is_ok(), "{r:?}");
    task.abort();
}

const API_KEY: &str = "k3y-0123456789abcdef";

/// A UniFi OS console (API key) and a classic controller (user `ro`,
/// password `pw`) in one.
fn unifi_double() -> Handler {
    Arc::new(
        |method: &Method, path: &str, headers: &HeaderMap, body: &str| {
            let json = |status: u16, body: &str| {
                let mut r = reply(status, body.to_string());
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
                r
            };
            let health = include_str!("testdata/unifi-stat-health.json");
            match (method.as_str(), path) {
                ("GET", "/proxy/network/api/s/default/stat/health") => {
                    match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
                        Some(API_KEY) => json(200, health),
                        _ => json(401, include_str!("testdata/unifi-os-unauthorized.json")),
                    }
                }
                ("POST", "/api/login") => {
                    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                    if v["username"] == "ro" && v["password"] == "pw" {
                        let mut r = json(200, r#"{"meta":{"rc":"ok"},"data":[]}"#);
                        r.headers_mut().append(
                            header::SET_COOKIE,
                            "unifises=s3ss10n; path=/; secure; HttpOnly"
                                .parse()
                                .unwrap(),
                        );
                        r.headers_mut().append(
                            header::SET_COOKIE,
                            "csrf_token=t0k; path=/; secure".parse().unwrap(),
                        );
                        r
                    } else {
                        json(
                            400,
                            r#"{"meta":{"rc":"error","msg":"api.err.Invalid"},"data":[]}"#,
                        )
                    }
                }
                ("GET", "/api/s/default/stat/health") => {
                    let cookie = headers
                        .get(header::COOKIE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    match cookie.split("; ").any(|c| c == "unifises=s3ss10n") {
                        true => json(200, health),
                        false => json(401, include_str!("testdata/unifi-login-required.json")),
                    }
                }
                _ => json(
                    404,
                    r#"{"meta":{"rc":"error","msg":"api.err.NotFound"},"data":[]}"#,
                ),
            }
        },
    )
}

#[tokio::test]
async fn unifi_with_an_api_key_and_with_a_login() {
    let (server, fingerprint) = tls_identity();
    let (port, task) = serve(unifi_double(), Some(server)).await;
    let pin = format!("?fingerprint={fingerprint}");
    let key_spec: Spec = format!("unifi://127.0.0.1:{port}{pin}").parse().unwrap();
    let r = poll_once(&key_spec, API_KEY).await.unwrap();
    assert_eq!(r.public_ip.as_deref(), Some("81.2.69.160"));
    assert_eq!(r.upstream, Upstream::Up);
    assert_eq!(r.latency_ms, Some(7.0));
    let e = poll_once(&key_spec, "not-the-key")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "authentication failed: the console refused the API key (HTTP 401)"
    );

    let login: Spec = format!("unifi://ro@127.0.0.1:{port}{pin}").parse().unwrap();
    let r = poll_once(&login, "pw").await.unwrap();
    assert_eq!(r.uptime_secs, Some(1209480));
    let e = poll_once(&login, "nope").await.unwrap_err().to_string();
    assert!(
        e.starts_with("authentication failed: the controller refused user \"ro\""),
        "{e}"
    );
    // Another site than the double knows: a clear 404.
    let site: Spec = format!("unifi://127.0.0.1:{port}?site=lab&insecure-tls")
        .parse()
        .unwrap();
    let e = poll_once(&site, API_KEY).await.unwrap_err().to_string();
    assert!(e.contains("404") && e.contains("\"lab\""), "{e}");
    // A self-signed console without a pin is refused, never skipped.
    let bare: Spec = format!("unifi://127.0.0.1:{port}").parse().unwrap();
    let e = poll_once(&bare, API_KEY).await.unwrap_err().to_string();
    assert!(e.starts_with("TLS:") && e.contains(&fingerprint), "{e}");
    task.abort();
}

#[test]
fn unifi_without_a_secret_says_what_is_missing() {
    let spec: Spec = "unifi://192.168.1.1".parse().unwrap();
    let Provider::Unsupported(why) = Provider::new(&spec, None) else {
        panic!("a provider without a key")
    };
    assert!(why.contains("--gateway-password-file"), "{why}");
}
