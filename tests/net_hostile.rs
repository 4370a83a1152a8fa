//! The agent's clients against hostile servers on loopback: redirects are not followed and
//! answers are read only up to their cap (issue 15, classes 6 and 9).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use akv_sync::azure::identity::IdentityClient;
use akv_sync::azure::net::{ConnectTo, NetConfig};
use akv_sync::azure::vault::KeyVaultClient;
use akv_sync_actors::{SecretSource, Token, TokenSource};
use akv_sync_config::{CertificateUrl, Cloud, Identity};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a fake server sends for a request path; `Stream` writes `head`, then `fill` bytes of
/// `a` in 64 KiB writes, then `tail`.
#[derive(Clone)]
enum Answer {
    Raw(String),
    Stream {
        head: String,
        fill: usize,
        tail: String,
    },
}

struct Fake {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    /// Bytes of body fill written before the client went away (streamed answers).
    written: Arc<AtomicUsize>,
    done: tokio::sync::mpsc::UnboundedReceiver<()>,
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    line.split(' ')
        .nth(1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_owned()
}

async fn answer<S: AsyncWrite + Unpin>(s: &mut S, a: Answer, written: &AtomicUsize) {
    match a {
        Answer::Raw(text) => {
            let _ = s.write_all(text.as_bytes()).await;
        }
        Answer::Stream { head, fill, tail } => {
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = 0;
            while sent < fill {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len();
                written.store(sent, Ordering::SeqCst);
            }
            let _ = s.write_all(tail.as_bytes()).await;
        }
    }
    let _ = s.shutdown().await;
}

/// A one-answer-per-connection HTTP/1.1 server on 127.0.0.1, over TLS when `tls` is given.
async fn fake(
    tls: Option<rustls::ServerConfig>,
    route: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    let route = Arc::new(route);
    let (r, w) = (requests.clone(), written.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (r, w, route, acceptor, done_tx) = (
                r.clone(),
                w.clone(),
                route.clone(),
                acceptor.clone(),
                done_tx.clone(),
            );
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        let Ok(mut s) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let path = read_head(&mut s).await;
                        r.fetch_add(1, Ordering::SeqCst);
                        answer(&mut s, route(&path), &w).await;
                    }
                    None => {
                        let mut s = tcp;
                        let path = read_head(&mut s).await;
                        r.fetch_add(1, Ordering::SeqCst);
                        answer(&mut s, route(&path), &w).await;
                    }
                }
                let _ = done_tx.send(());
            });
        }
    });
    Fake {
        addr,
        requests,
        written,
        done,
    }
}

/// A CA and a server configuration for `myvault.vault.azure.net` signed by it.
fn vault_tls() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["myvault.vault.azure.net".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca.pem(), config)
}

fn vault_url(name: &str) -> CertificateUrl {
    let host = "myvault.vault.azure.net".to_owned();
    CertificateUrl {
        original: format!("https://{host}/secrets/{name}"),
        vault: "myvault".into(),
        host,
        port: None,
        cloud: Cloud::Public,
        name: name.into(),
        version: None,
    }
}

fn client(vault: Option<(SocketAddr, &str)>) -> reqwest::Client {
    let mut net = NetConfig::default();
    if let Some((addr, ca)) = vault {
        net.connect_to = vec![ConnectTo::new("*.vault.azure.net", addr)];
        net.extra_ca_pem = Some(ca.as_bytes().to_vec());
        net.extra_ca_path = Some("<test CA>".into());
    }
    net.client().unwrap()
}

fn imds(addr: SocketAddr) -> IdentityClient {
    IdentityClient::with_endpoint(
        client(None),
        &Identity::SystemAssigned {
            endpoint: "http://169.254.169.254/metadata/identity".into(),
        },
        Some(format!("http://{addr}/metadata/identity")),
    )
}

#[tokio::test]
async fn a_vault_redirect_is_an_error_naming_the_location() {
    let (ca, tls) = vault_tls();
    let location = "https://myvault.vault.azure.net/stolen";
    let srv = fake(Some(tls), move |path| {
        if path == "/stolen" {
            // What an attacker's host would send, unauthenticated.
            let body = r#"{"value":"x","id":"https://myvault.vault.azure.net/secrets/c1/0123456789abcdef0123456789abcdef","attributes":{"enabled":true}}"#;
            Answer::Raw(format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ))
        } else {
            Answer::Raw(format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ))
        }
    })
    .await;
    let vault = KeyVaultClient::new(client(Some((srv.addr, &ca))));
    let err = vault
        .get(&vault_url("c1"), &Token::new(1, "t".into()), None)
        .await
        .unwrap_err();
    assert!(err.message.contains(location), "{}", err.message);
    assert_eq!(
        srv.requests.load(Ordering::SeqCst),
        1,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn an_identity_redirect_is_an_error_naming_the_location() {
    let srv = fake(None, |path| {
        if path == "/elsewhere" {
            let body = r#"{"access_token":"stolen","expires_in":"3600"}"#;
            Answer::Raw(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ))
        } else {
            Answer::Raw(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .into(),
            )
        }
    })
    .await;
    let err = imds(srv.addr)
        .fetch("https://vault.azure.net")
        .await
        .unwrap_err();
    assert!(err.message.contains("/elsewhere"), "{}", err.message);
    assert_eq!(
        srv.requests.load(Ordering::SeqCst),
        1,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn a_huge_access_token_answer_is_refused_without_reading_it_all() {
    const FILL: usize = 256 * 1024 * 1024;
    let mut srv = fake(None, |_| Answer::Stream {
        head: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"access_token\":\"".into(),
        fill: FILL,
        tail: "\",\"expires_in\":\"3600\"}".into(),
    })
    .await;
    let result = imds(srv.addr).fetch("https://vault.azure.net").await;
    assert!(result.is_err(), "a 256 MiB token was accepted");
    // The server saw the client go away long before the end of the answer.
    tokio::time::timeout(std::time::Duration::from_secs(30), srv.done.recv())
        .await
        .expect("the client kept reading");
    assert!(srv.written.load(Ordering::SeqCst) < FILL / 4);
}
