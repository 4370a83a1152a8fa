//! What a handler answers, and what it reads of every request: the leaf the handlers and the
//! server share (the server calls the handlers; the handlers never call the server).

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};

/// `Content-Type` of every JSON answer, as Azure writes it.
pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// An answer before it becomes a hyper response (so faults can rework it).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static(JSON))],
            body: Bytes::from(body.to_string()),
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.retain(|(n, _)| n != name);
            self.headers.push((name, v));
        }
        self
    }
}

/// Where a request to the vault listener is going: the vault label of its host, if any.
pub(crate) fn request_host(req: &Request<Incoming>) -> Option<String> {
    let host = req.uri().host().map(str::to_owned).or_else(|| {
        req.headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    })?;
    // Strip a port (and the brackets of an IPv6 literal).
    let host = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default().to_owned()
    } else {
        host.split(':').next().unwrap_or_default().to_owned()
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}
