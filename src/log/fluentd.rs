//! Log shipping to Fluentd with its Forward protocol, when `loggingSettings` asks
//! (`"logger": "fluentd"`, `"endpoint": "tcp://host:port"`, `"format": "forward"`,
//! `"servicename"` = the tag).
//!
//! Each log event becomes `[EventTime, record]`; whatever is queued is sent as one Forward
//! mode message `[tag, [[time, record], …]]` over TCP (msgpack). The queue is bounded: when
//! Fluentd is down or slow, the oldest records are dropped and counted, and the agent is never
//! blocked. A sender thread reconnects with backoff (1 s doubling to 30 s).

use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Records kept while Fluentd is unreachable.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Records sent in one Forward message at most.
const BATCH: usize = 500;

/// The bounded queue between the logging layer and the sender thread.
pub struct Queue {
    entries: Mutex<VecDeque<Vec<u8>>>,
    ready: Condvar,
    capacity: usize,
    /// Records dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl Queue {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Queue {
            entries: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity,
            dropped: AtomicU64::new(0),
        })
    }

    fn push(&self, entry: Vec<u8>) {
        let mut q = self.entries.lock().expect("fluentd queue");
        if q.len() >= self.capacity {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(entry);
        self.ready.notify_one();
    }

    /// Wait for entries and take up to `max`.
    fn take(&self, max: usize) -> Vec<Vec<u8>> {
        let mut q = self.entries.lock().expect("fluentd queue");
        while q.is_empty() {
            q = self.ready.wait(q).expect("fluentd queue");
        }
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    /// Put back a batch that could not be sent, oldest first, within capacity.
    fn put_back(&self, batch: Vec<Vec<u8>>) {
        let mut q = self.entries.lock().expect("fluentd queue");
        for entry in batch.into_iter().rev() {
            if q.len() >= self.capacity {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            q.push_front(entry);
        }
    }
}

/// The tracing layer: encodes each event and queues it.
pub struct FluentdLayer {
    queue: Arc<Queue>,
}

#[derive(Default)]
struct Record(Vec<(String, String)>);

impl Visit for Record {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

/// `[EventTime(secs, nanos), {k: v, …}]` in msgpack.
pub fn encode_entry(time: SystemTime, fields: &[(String, String)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    rmp::encode::write_array_len(&mut buf, 2).expect("vec write");
    // EventTime: ext type 0, 8 bytes: seconds and nanoseconds, big endian.
    rmp::encode::write_ext_meta(&mut buf, 8, 0).expect("vec write");
    buf.extend_from_slice(&(since.as_secs() as u32).to_be_bytes());
    buf.extend_from_slice(&since.subsec_nanos().to_be_bytes());
    rmp::encode::write_map_len(&mut buf, fields.len() as u32).expect("vec write");
    for (k, v) in fields {
        rmp::encode::write_str(&mut buf, k).expect("vec write");
        rmp::encode::write_str(&mut buf, v).expect("vec write");
    }
    buf
}

/// `[tag, [entry, …]]` in msgpack (Forward mode).
pub fn encode_forward(tag: &str, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(entries.iter().map(Vec::len).sum::<usize>() + 64);
    rmp::encode::write_array_len(&mut buf, 2).expect("vec write");
    rmp::encode::write_str(&mut buf, tag).expect("vec write");
    rmp::encode::write_array_len(&mut buf, entries.len() as u32).expect("vec write");
    for e in entries {
        buf.extend_from_slice(e);
    }
    buf
}

impl<S: Subscriber> Layer<S> for FluentdLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut record = Record::default();
        record.0.push(("level".into(), meta.level().to_string()));
        record.0.push(("target".into(), meta.target().to_owned()));
        event.record(&mut record);
        self.queue.push(encode_entry(SystemTime::now(), &record.0));
    }
}

/// Start shipping to `host:port` with `tag`. Returns the layer and the queue (for the
/// dropped-records counter).
pub fn start(host: &str, port: u16, tag: &str) -> (FluentdLayer, Arc<Queue>) {
    let queue = Queue::new(QUEUE_CAPACITY);
    let q = queue.clone();
    let (host, tag) = (host.to_owned(), tag.to_owned());
    std::thread::Builder::new()
        .name("akv-sync-fluentd".into())
        .spawn(move || sender(&q, &host, port, &tag))
        .expect("spawn the fluentd sender thread");
    (
        FluentdLayer {
            queue: queue.clone(),
        },
        queue,
    )
}

fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(s) => {
                s.set_write_timeout(Some(Duration::from_secs(5)))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn sender(queue: &Queue, host: &str, port: u16, tag: &str) {
    let mut conn: Option<TcpStream> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let batch = queue.take(BATCH);
        if conn.is_none() {
            match connect(host, port) {
                Ok(s) => {
                    conn = Some(s);
                    backoff = Duration::from_secs(1);
                }
                Err(_) => {
                    queue.put_back(batch);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        let message = encode_forward(tag, &batch);
        let sent = conn
            .as_mut()
            .map(|c| c.write_all(&message).and_then(|_| c.flush()));
        if !matches!(sent, Some(Ok(()))) {
            conn = None;
            queue.put_back(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_event_time_and_a_string_map() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        let bytes = encode_forward(
            "akvvm_service",
            &[encode_entry(t, &[("message".into(), "hi".into())])],
        );
        let v = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
        assert_eq!(v[0].as_str(), Some("akvvm_service"));
        let entry = &v[1][0];
        let rmpv::Value::Ext(0, data) = &entry[0] else {
            panic!("not EventTime: {entry:?}")
        };
        assert_eq!(
            u32::from_be_bytes(data[..4].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(u32::from_be_bytes(data[4..].try_into().unwrap()), 123);
        assert_eq!(entry[1]["message"].as_str(), Some("hi"));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let q = Queue::new(2);
        q.push(vec![1]);
        q.push(vec![2]);
        q.push(vec![3]);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(q.take(10), vec![vec![2], vec![3]]);
    }
}
