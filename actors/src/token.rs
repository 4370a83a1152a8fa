//! The token actor: one managed-identity token per audience for the whole process.
//!
//! Any number of watchers ask [`TokenHandle::get`]; while a fetch is in flight every asker
//! waits on the same fetch (single flight), so N watchers starting together cause one request
//! to the identity service. A cached token is handed out until it comes within
//! [`refresh_margin`] of its expiry; then the next asker triggers a refresh. A watcher whose
//! token Key Vault refused (401) calls [`TokenHandle::refresh`] with that token's generation:
//! the first such call refetches, later ones for the same generation get the new token.
//!
//! Fresh tokens are also published to a small map shared with every handle, so that the
//! common case — a cached token well before its refresh time — costs a lock and a clone
//! instead of a round trip through the actor on every check. Everything else (first fetch,
//! refresh, 401) still goes through the actor, which keeps single flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::clock::{MAX_TOKEN_LIFETIME, after};
use crate::died::Deaths;
use crate::port::{FetchedToken, Observer, SourceError, Token, TokenSource};

/// How long before expiry a token is refreshed: 5 minutes, or a tenth of its lifetime when
/// that is shorter (IMDS tokens live about 24 h; the emulator may issue short ones).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    std::cmp::min(Duration::from_secs(300), lifetime / 10)
}

type Reply = oneshot::Sender<Result<Token, SourceError>>;

enum Request {
    Get {
        audience: String,
        /// Refuse a cached token of this generation (it was rejected with 401).
        reject: Option<u64>,
        reply: Reply,
    },
}

struct Done {
    audience: String,
    result: Result<FetchedToken, SourceError>,
}

struct Cached {
    token: Token,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    waiters: Vec<Reply>,
    in_flight: bool,
}

/// Tokens handed out without asking the actor: audience → (token, refresh time). Written
/// only by the actor.
type Fresh = Arc<Mutex<HashMap<String, (Token, Instant)>>>;

fn fresh_lock(fresh: &Fresh) -> std::sync::MutexGuard<'_, HashMap<String, (Token, Instant)>> {
    // A panic while holding this lock cannot leave the map half-updated (single inserts
    // and removals), so a poisoned lock is still usable.
    fresh.lock().unwrap_or_else(|e| e.into_inner())
}

struct TokenActor<S> {
    fresh: Fresh,
    source: Arc<S>,
    observer: Arc<dyn Observer>,
    requests: mpsc::Receiver<Request>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    slots: HashMap<String, Slot>,
    generation: u64,
    deaths: Deaths,
}

impl<S: TokenSource> TokenActor<S> {
    async fn run(mut self) {
        loop {
            tokio::select! {
                // Fetch results first, so that waiters are answered before new askers queue up.
                biased;
                Some(done) = self.done_rx.recv() => self.finish(done),
                request = self.requests.recv() => match request {
                    Some(Request::Get { audience, reject, reply }) => self.get(audience, reject, reply),
                    // Every handle dropped: nobody can ask any more.
                    None => break,
                },
            }
        }
    }

    fn get(&mut self, audience: String, reject: Option<u64>, reply: Reply) {
        let now = Instant::now();
        let slot = self.slots.entry(audience.clone()).or_default();
        if let Some(cached) = &slot.cached {
            let rejected = reject == Some(cached.token.generation);
            if rejected {
                slot.cached = None;
                fresh_lock(&self.fresh).remove(&audience);
            } else if now < cached.refresh_at {
                let _ = reply.send(Ok(cached.token.clone()));
                return;
            }
        }
        slot.waiters.push(reply);
        if !slot.in_flight {
            slot.in_flight = true;
            let source = self.source.clone();
            let done = self.done_tx.clone();
            let deaths = self.deaths.clone();
            tokio::spawn(async move {
                // A fetch that panics is reported (and its waiters answered), never left
                // "in flight" for ever.
                let fetch = tokio::spawn({
                    let audience = audience.clone();
                    async move { source.fetch(&audience).await }
                });
                let result = fetch.await.unwrap_or_else(|e| {
                    if e.is_panic() {
                        deaths.report("token actor (identity fetch)");
                    }
                    Err(SourceError::new(
                        crate::port::ErrorClass::Transient,
                        "the token fetch failed",
                    ))
                });
                let _ = done.send(Done { audience, result });
            });
        }
    }

    fn finish(&mut self, done: Done) {
        let now = Instant::now();
        let slot = self.slots.entry(done.audience.clone()).or_default();
        slot.in_flight = false;
        let answer = match done.result {
            Ok(fetched) => {
                self.generation += 1;
                let token = Token::new(self.generation, fetched.secret);
                // `expires_in` is what the identity endpoint said: capped, never overflowing.
                let lifetime = fetched.expires_in.min(MAX_TOKEN_LIFETIME);
                let refresh_at = after(now, lifetime - refresh_margin(lifetime));
                slot.cached = Some(Cached {
                    token: token.clone(),
                    refresh_at,
                    expires_at: after(now, lifetime),
                });
                fresh_lock(&self.fresh).insert(done.audience.clone(), (token.clone(), refresh_at));
                self.observer.token_refreshed();
                Ok(token)
            }
            // A refresh failed but the old token is still valid: keep using it.
            Err(err) => match &slot.cached {
                Some(cached) if now < cached.expires_at => Ok(cached.token.clone()),
                _ => Err(err),
            },
        };
        for waiter in slot.waiters.drain(..) {
            let _ = waiter.send(answer.clone());
        }
    }
}

/// A cheap, cloneable handle to the token actor. The actor ends when every handle is dropped.
#[derive(Clone)]
pub struct TokenHandle {
    requests: mpsc::Sender<Request>,
    fresh: Fresh,
}

impl TokenHandle {
    /// Start the token actor on the current runtime.
    pub fn spawn<S: TokenSource>(source: Arc<S>, observer: Arc<dyn Observer>) -> Self {
        Self::spawn_watched(source, observer, Deaths::default())
    }

    /// Like [`spawn`](Self::spawn); a panic of the actor or of a fetch is reported to `deaths`.
    pub fn spawn_watched<S: TokenSource>(
        source: Arc<S>,
        observer: Arc<dyn Observer>,
        deaths: Deaths,
    ) -> Self {
        let (requests, rx) = mpsc::channel(1024);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let fresh = Fresh::default();
        let actor = TokenActor {
            fresh: fresh.clone(),
            source,
            observer,
            requests: rx,
            done_tx,
            done_rx,
            slots: HashMap::new(),
            generation: 0,
            deaths: deaths.clone(),
        };
        deaths.spawn("token actor".to_owned(), actor.run());
        TokenHandle { requests, fresh }
    }

    /// A valid token for `audience` (cached, or fetched once for all who ask together).
    pub async fn get(&self, audience: &str) -> Result<Token, SourceError> {
        if let Some((token, refresh_at)) = fresh_lock(&self.fresh).get(audience)
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        self.ask(audience, None).await
    }

    /// A token other than `rejected` (which Key Vault refused): refetched once, shared.
    pub async fn refresh(&self, audience: &str, rejected: &Token) -> Result<Token, SourceError> {
        self.ask(audience, Some(rejected.generation)).await
    }

    async fn ask(&self, audience: &str, reject: Option<u64>) -> Result<Token, SourceError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || {
            SourceError::new(
                crate::port::ErrorClass::Transient,
                "the token actor has stopped",
            )
        };
        self.requests
            .send(Request::Get {
                audience: audience.to_owned(),
                reject,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::{ErrorClass, NoObserver};
    use std::sync::atomic::{AtomicU32, Ordering};

    struct CountingSource {
        calls: AtomicU32,
        lifetime: Duration,
        fail: bool,
    }

    impl TokenSource for CountingSource {
        async fn fetch(&self, audience: &str) -> Result<FetchedToken, SourceError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            // Let every concurrent asker queue up behind this one fetch.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.fail {
                return Err(SourceError::new(ErrorClass::Transient, "identity down"));
            }
            Ok(FetchedToken {
                secret: format!("{audience}#{n}"),
                expires_in: self.lifetime,
            })
        }
    }

    fn source(lifetime: Duration) -> Arc<CountingSource> {
        Arc::new(CountingSource {
            calls: AtomicU32::new(0),
            lifetime,
            fail: false,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_concurrent_askers_cause_one_fetch() {
        let src = source(Duration::from_secs(3600));
        let handle = TokenHandle::spawn(src.clone(), Arc::new(NoObserver));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let h = handle.clone();
            tasks.spawn(async move { h.get("https://vault.azure.net").await.unwrap() });
        }
        while let Some(token) = tasks.join_next().await {
            assert_eq!(token.unwrap().secret(), "https://vault.azure.net#1");
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn each_audience_has_its_own_token() {
        let src = source(Duration::from_secs(3600));
        let handle = TokenHandle::spawn(src.clone(), Arc::new(NoObserver));
        let a = handle.get("https://vault.azure.net").await.unwrap();
        let b = handle.get("https://vault.azure.cn").await.unwrap();
        assert_ne!(a.secret(), b.secret());
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
        handle.get("https://vault.azure.net").await.unwrap();
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn token_is_refreshed_before_it_expires() {
        let src = source(Duration::from_secs(3600));
        let handle = TokenHandle::spawn(src.clone(), Arc::new(NoObserver));
        let first = handle.get("aud").await.unwrap();
        // Just before the refresh point, the cached token is handed out.
        tokio::time::advance(Duration::from_secs(3600 - 300 - 60)).await;
        assert_eq!(
            handle.get("aud").await.unwrap().generation,
            first.generation
        );
        // Inside the margin, a new one is fetched although the old one is still valid.
        tokio::time::advance(Duration::from_secs(120)).await;
        let second = handle.get("aud").await.unwrap();
        assert_ne!(second.generation, first.generation);
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_token_is_refetched_once_for_all_who_report_it() {
        let src = source(Duration::from_secs(3600));
        let handle = TokenHandle::spawn(src.clone(), Arc::new(NoObserver));
        let first = handle.get("aud").await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let h = handle.clone();
            let rejected = first.clone();
            tasks.spawn(async move { h.refresh("aud", &rejected).await.unwrap() });
        }
        while let Some(token) = tasks.join_next().await {
            assert_eq!(token.unwrap().generation, first.generation + 1);
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn fetch_errors_reach_every_waiter() {
        let src = Arc::new(CountingSource {
            calls: AtomicU32::new(0),
            lifetime: Duration::from_secs(60),
            fail: true,
        });
        let handle = TokenHandle::spawn(src.clone(), Arc::new(NoObserver));
        let (a, b) = tokio::join!(handle.get("aud"), handle.get("aud"));
        assert_eq!(a.unwrap_err().class, ErrorClass::Transient);
        assert_eq!(b.unwrap_err().class, ErrorClass::Transient);
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_token_lifetime_is_capped_at_a_day() {
        // expires_in as large as the identity endpoint can say: no overflow, and the token
        // is refreshed within a day as if it lived 24 h.
        let src = source(Duration::MAX);
        let handle = TokenHandle::spawn(src.clone(), Arc::new(NoObserver));
        let first = handle.get("aud").await.unwrap();
        tokio::time::advance(MAX_TOKEN_LIFETIME).await;
        let second = handle.get("aud").await.unwrap();
        assert_ne!(second.generation, first.generation);
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn token_debug_hides_the_secret() {
        let t = Token::new(7, "eyJsecret".into());
        assert!(!format!("{t:?}").contains("eyJsecret"));
    }
}
