//! How long parsing takes for a large settings file (SPEC §5: thousands of observed
//! certificates per host). A plain timer, no harness: `cargo bench -p akv-sync-config`.

use std::hint::black_box;
use std::time::Instant;

fn settings(certificates: usize) -> String {
    let list: Vec<String> = (0..certificates)
        .map(|i| {
            format!(
                r#"{{"url": "https://vault{}.vault.azure.net/secrets/cert{i}", "customSymbolicLinkName": "link{i}",
                    "acls": [{{"user": "app{}", "group": 1000}}], "akvSync": {{"outputs": {{"fullchain": "cert{i}.pem"}}}}}}"#,
                i % 50,
                i % 7
            )
        })
        .collect();
    format!(
        r#"{{"secretsManagementSettings": {{"pollingIntervalInS": "3600", "aclEnabled": true, "observedCertificates": [{}]}}}}"#,
        list.join(",")
    )
}

fn main() {
    for certificates in [100, 1_000, 10_000] {
        let text = settings(certificates);
        let rounds = (100_000 / certificates).max(5);
        let start = Instant::now();
        for _ in 0..rounds {
            let parsed = akv_sync_config::parse(black_box(&text)).expect("valid settings");
            assert_eq!(parsed.settings.certificates.len(), certificates);
        }
        let per_parse = start.elapsed() / rounds as u32;
        println!(
            "parse {certificates:>6} certificates ({:>8} bytes): {per_parse:>10.2?} per parse, {:>8.2?} per certificate",
            text.len(),
            per_parse / certificates as u32
        );
    }
}
