//! Reading answers from the network: bodies capped, redirects refused.
//!
//! Every answer the agent reads comes from a server it does not control: its size is capped
//! before it is held in memory ([`read_capped`]), and since the HTTP client follows no
//! redirects (see [`crate::net`]), a 3xx is an error that names where it pointed
//! ([`redirect_refused`]).

use zeroize::Zeroizing;

/// The largest identity (token) answer read: tokens are a few KiB.
pub const IDENTITY_MAX: usize = 64 * 1024;

/// Why an answer could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The answer (or its `Content-Length`) is over the cap; reading stopped there.
    TooLarge { max: usize },
    /// The connection failed before the end of the answer.
    Cut(reqwest::Error),
}

/// The body of `resp`, at most `max` bytes; over that is [`ReadError::TooLarge`] without
/// reading the rest. Zeroized when dropped (it may hold a token).
pub async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge { max });
    }
    let expected = resp.content_length().unwrap_or(4096).min(max as u64) as usize;
    let mut body = Zeroizing::new(Vec::with_capacity(expected));
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Cut)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The message for a 3xx answer from `who`: redirects are not followed.
pub fn redirect_refused(who: &str, resp: &reqwest::Response) -> String {
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_else(|| "nowhere (no Location)".to_owned());
    format!(
        "{who} answered HTTP {} redirecting to {location}; redirects are not followed",
        resp.status().as_u16()
    )
}
