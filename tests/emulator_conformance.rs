//! The emulator's answers have the shape of the real service's: compared with the recorded
//! Key Vault sessions in `shared/conformance/recorded/` (entries 7, the 401 challenge, and 8,
//! the certificate's secret), for both the PKCS#12 and the PEM session.

mod emulator_support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use akv_sync_emulator::Format;
use emulator_support::{ec_spec, start};
use serde_json::Value;

/// `shared/` beside the workspace (`../shared` in CI and in the main checkout; one more level
/// up from a worktree under `wt/`), or `AKV_SYNC_SHARED_DIR`.
fn recorded_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AKV_SYNC_SHARED_DIR") {
        return PathBuf::from(dir).join("conformance/recorded");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [root.join("../shared"), root.join("../../shared")]
        .into_iter()
        .map(|d| d.join("conformance/recorded"))
        .find(|d| d.is_dir())
        .expect(
            "shared/conformance/recorded/ not found beside the workspace (set AKV_SYNC_SHARED_DIR)",
        )
}

fn entries(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(recorded_dir().join(file)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["Entries"].as_array().unwrap().clone()
}

fn header_names(map: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    map.keys().map(|k| k.to_ascii_lowercase()).collect()
}

fn names_of(headers: &reqwest::header::HeaderMap) -> BTreeSet<String> {
    headers.keys().map(|k| k.as_str().to_owned()).collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `https://{host}/{kind}/{name}/{32 lowercase hex}`.
fn object_id_shape(url: &str, kind: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() == 4
        && parts[0].ends_with(".vault.azure.net")
        && parts[1] == kind
        && !parts[2].is_empty()
        && parts[3].len() == 32
        && parts[3]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn compare(file: &str, format: Format) {
    let recorded = entries(file);
    let (rec401, rec200) = (&recorded[7], &recorded[8]);
    assert_eq!(rec401["StatusCode"], 401);
    assert_eq!(rec200["StatusCode"], 200);
    let rec_url = rec401["RequestUri"].as_str().unwrap();
    let path_and_query = &rec_url[rec_url.find("/secrets/").unwrap()..];
    let name = path_and_query.split('/').nth(2).unwrap();

    let h = start().await;
    h.emu
        .control()
        .create_certificate("keyvault-name", name, ec_spec(format))
        .unwrap();
    let url = format!("https://keyvault-name.vault.azure.net{path_and_query}");
    let send = |token: Option<String>| {
        let mut req = h.https.get(&url);
        for (k, v) in rec401["RequestHeaders"].as_object().unwrap() {
            if !k.eq_ignore_ascii_case("accept-encoding") {
                req = req.header(k.as_str(), v.as_str().unwrap());
            }
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    // Entry 7: the challenge.
    let resp = send(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    let rec_headers = rec401["ResponseHeaders"].as_object().unwrap();
    let missing: Vec<_> = header_names(rec_headers)
        .difference(&names_of(resp.headers()))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "401 lacks headers {missing:?}");
    for same in [
        "Content-Type",
        "WWW-Authenticate",
        "x-ms-client-request-id",
        "Cache-Control",
        "Expires",
        "Pragma",
    ] {
        assert_eq!(
            resp.headers()[same].to_str().unwrap(),
            rec_headers[same].as_str().unwrap(),
            "{same}"
        );
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, rec401["ResponseBody"]);

    // Entry 8: the secret.
    let token = h.imds_token("https://vault.azure.net", None).await;
    let resp = send(Some(token)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let rec_headers = rec200["ResponseHeaders"].as_object().unwrap();
    let missing: Vec<_> = header_names(rec_headers)
        .difference(&names_of(resp.headers()))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "200 lacks headers {missing:?}");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        rec_headers["Content-Type"].as_str().unwrap()
    );
    let content_length: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(content_length, text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    let rec_body = &rec200["ResponseBody"];

    assert_eq!(keys(&body), keys(rec_body), "top-level keys");
    for key in keys(rec_body) {
        assert_eq!(
            json_type(&body[&key]),
            json_type(&rec_body[&key]),
            "type of {key}"
        );
    }
    assert_eq!(
        keys(&body["attributes"]),
        keys(&rec_body["attributes"]),
        "attribute keys"
    );
    for key in keys(&rec_body["attributes"]) {
        assert_eq!(
            json_type(&body["attributes"][&key]),
            json_type(&rec_body["attributes"][&key]),
            "type of attributes.{key}"
        );
    }
    assert_eq!(body["contentType"], rec_body["contentType"]);
    assert_eq!(body["managed"], rec_body["managed"]);
    for (b, kind) in [(&body, "secrets"), (rec_body, "secrets")] {
        assert!(
            object_id_shape(b["id"].as_str().unwrap(), kind),
            "{}",
            b["id"]
        );
        assert!(
            object_id_shape(b["kid"].as_str().unwrap(), "keys"),
            "{}",
            b["kid"]
        );
    }
    // The id names the same secret the request did.
    assert!(
        body["id"]
            .as_str()
            .unwrap()
            .contains(&format!("/secrets/{name}/"))
    );
}

#[tokio::test]
async fn pkcs12_secret_answers_have_the_recorded_shape() {
    compare("pkcs12-secret.recording.json", Format::Pkcs12).await;
}

#[tokio::test]
async fn pem_secret_answers_have_the_recorded_shape() {
    compare("pem-secret.recording.json", Format::Pem).await;
}
