//! The server against real sockets with a stand-in handler: caps, timeouts, long lines,
//! stops and takeovers, without root or a daemon.

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream as StdStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn limits() -> Limits {
    Limits {
        max_request: 1024,
        max_connections: 4,
        idle: Duration::from_secs(10),
        write: Duration::from_secs(10),
        grace: ms(200),
        drain: Duration::from_secs(5),
    }
}

static N: AtomicU32 = AtomicU32::new(0);

fn sock_path() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kvnet-server-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.join("kvnetd.sock")
}

/// A server on its own thread whose handler logs each request's op; `start` takes
/// 300 ms, as a slow request would.
struct Running {
    path: PathBuf,
    ops: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn handler(ops: Arc<Mutex<Vec<String>>>) -> Handler {
    Arc::new(move |req| {
        let ops = ops.clone();
        Box::pin(async move {
            let op = serde_json::to_value(&req).unwrap()["op"]
                .as_str()
                .unwrap()
                .to_string();
            if op == "start" {
                tokio::time::sleep(ms(300)).await;
            }
            ops.lock().unwrap().push(op);
            Reply::ok(&"done", Vec::new())
        })
    })
}

fn run(limits: Limits, passed: Option<std::os::unix::net::UnixListener>) -> Running {
    let path = match &passed {
        Some(l) => l.local_addr().unwrap().as_pathname().unwrap().to_path_buf(),
        None => sock_path(),
    };
    let ops = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, is_ready) = std::sync::mpsc::channel();
    let thread = {
        let (path, ops) = (path.clone(), ops.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = match passed {
                    Some(l) => Server::take_over(l, &path, None, limits).unwrap(),
                    None => Server::bind(&path, None, limits).unwrap(),
                };
                ready.send(()).unwrap();
                server
                    .serve(handler(ops), async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })
    };
    is_ready.recv().unwrap();
    Running {
        path,
        ops,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Running {
    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn ops(&self) -> Vec<String> {
        self.ops.lock().unwrap().clone()
    }

    fn connect(&self) -> StdStream {
        StdStream::connect(&self.path).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn send(s: &StdStream, line: &str) {
    (&*s).write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The next reply line, or None at the end of the stream.
fn reply(s: &StdStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = String::new();
    match BufReader::new(s).read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

/// Whether the server closed `s` (reading what it sent before, if anything).
fn closed_within(s: &StdStream, t: Duration) -> bool {
    s.set_read_timeout(Some(t)).unwrap();
    let mut sink = Vec::new();
    match (&*s).read_to_end(&mut sink) {
        Ok(_) => true,
        // Closed with our requests unread.
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

const PING: &str = r#"{"op":"ping"}"#;
const DESTROY: &str = r#"{"op":"destroy","network":"default"}"#;

#[test]
fn at_the_cap_the_oldest_idle_connection_makes_way() {
    let srv = run(limits(), None);
    let idle: Vec<StdStream> = (0..10).map(|_| srv.connect()).collect();
    let t0 = Instant::now();
    let s = srv.connect();
    send(&s, PING);
    assert!(reply(&s).unwrap().contains("\"ok\":true"));
    assert!(t0.elapsed() < ms(500), "{:?}", t0.elapsed());
    // The oldest were closed; the newest four (the cap) may still be open.
    for c in &idle[..6] {
        assert!(closed_within(c, ms(500)), "an old idle connection stayed");
    }
}

#[test]
fn a_connection_without_a_request_is_closed_after_the_idle_time() {
    let srv = run(
        Limits {
            idle: ms(200),
            ..limits()
        },
        None,
    );
    let s = srv.connect();
    let t0 = Instant::now();
    assert!(closed_within(&s, Duration::from_secs(2)));
    assert!(t0.elapsed() >= ms(150), "{:?}", t0.elapsed());
}

#[test]
fn a_line_over_the_limit_closes_the_connection_and_nothing_after_it_runs() {
    let srv = run(limits(), None);
    for line in [
        // The limit and one, then a request on the next line.
        format!("{}\n{DESTROY}", "x".repeat(1025)),
        // A request cut at the limit.
        format!("{}{DESTROY}", " ".repeat(1000)),
    ] {
        let s = srv.connect();
        send(&s, &line);
        let r = reply(&s).unwrap();
        assert!(r.contains("request longer than 1024 bytes"), "{r}");
        assert_eq!(reply(&s), None, "connection closed");
    }
    // At the limit exactly it is a request (JSON allows the padding).
    let s = srv.connect();
    send(&s, &format!("{}{PING}", " ".repeat(1024 - PING.len())));
    assert!(reply(&s).unwrap().contains("\"ok\":true"));
    assert_eq!(srv.ops(), ["ping"], "the destroys never ran");
}

#[test]
fn a_client_that_never_reads_is_dropped_and_others_are_served_meanwhile() {
    let srv = run(
        Limits {
            write: ms(500),
            ..limits()
        },
        None,
    );
    let greedy = srv.connect();
    let all = format!("{PING}\n").repeat(10_000);
    let writer = {
        let g = greedy.try_clone().unwrap();
        std::thread::spawn(move || (&g).write_all(all.as_bytes()).is_ok())
    };
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t0 = Instant::now();
        let r = kvnet_api::call_raw(&srv.path, &kvnet_api::request::Ping {}.into()).unwrap();
        assert!(r.ok);
        worst = worst.max(t0.elapsed());
        std::thread::sleep(ms(20));
    }
    assert!(worst < ms(100), "others waited {worst:?}");
    // Reading now would make it a reader: look once the write timeout has passed.
    std::thread::sleep(ms(1000));
    assert!(closed_within(&greedy, ms(100)));
    // Its requests stopped being read when its replies stopped being written.
    let _ = writer.join();
    let served = srv.ops().len();
    assert!(served < 10_000, "{served}");
}

#[test]
fn a_stop_answers_what_was_accepted_and_queued() {
    let mut srv = run(
        Limits {
            max_connections: 1,
            ..limits()
        },
        None,
    );
    // A slow request holds the only slot; the next connection waits for a slot, the
    // third in the socket's queue.
    let a = srv.connect();
    send(&a, r#"{"op":"start","network":"n"}"#);
    std::thread::sleep(ms(50));
    let b = srv.connect();
    send(&b, PING);
    std::thread::sleep(ms(50));
    let c = srv.connect();
    send(&c, PING);
    std::thread::sleep(ms(50));
    srv.stop();
    for s in [&a, &b, &c] {
        assert!(reply(s).unwrap().contains("\"ok\":true"));
    }
    assert!(!srv.path.exists(), "the socket kvnetd made is removed");
    let e = StdStream::connect(&srv.path).unwrap_err();
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::NotFound,
        "clients retry on this"
    );
}

#[test]
fn a_passed_socket_outlives_the_server_and_queues_clients_for_the_next() {
    let path = sock_path();
    // systemd's copy of the socket.
    let systemd = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut first = run(limits(), Some(systemd.try_clone().unwrap()));
    let s = first.connect();
    send(&s, PING);
    assert!(reply(&s).is_some());
    first.stop();
    assert!(path.exists(), "the socket is systemd's: it stays");
    // Between the two servers clients connect and send; they are answered by the next.
    let waiting: Vec<StdStream> = (0..3)
        .map(|_| {
            let s = StdStream::connect(&path).unwrap();
            send(&s, PING);
            s
        })
        .collect();
    let second = run(limits(), Some(systemd.try_clone().unwrap()));
    for s in &waiting {
        assert!(reply(s).unwrap().contains("\"ok\":true"));
    }
    assert_eq!(second.ops(), ["ping"; 3]);
}

#[test]
fn idle_connections_are_told_apart_from_busy_ones() {
    let idle = Idle::default();
    let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    idle.enter(1, &a);
    idle.enter(2, &b);
    idle.leave(1);
    assert!(idle.evict_oldest());
    assert!(!idle.evict_oldest(), "only 2 was idle");
}

#[test]
fn an_event_reader_that_falls_behind_gets_a_gap_and_stalls_nothing() {
    use kvnet_api::{EventKind, NetEvent};
    let r = run(limits(), None);
    let c = StdStream::connect(&r.path).unwrap();
    (&c).write_all(b"{\"op\":\"events\",\"network\":\"gapnet\"}\n")
        .unwrap();
    let mut rd = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    rd.read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
    // Nobody reads while 20,000 events go out: emitting never waits for the reader.
    let t0 = Instant::now();
    for i in 0..20_000 {
        crate::events::emit(
            "gapnet",
            EventKind::Lease,
            "added",
            &[("address", i.to_string())],
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // Then the reader gets what its socket held, a gap counting what it lost, and the
    // newest events, up to the last one.
    let (mut seen, mut lost, mut gaps) = (0u64, 0u64, 0);
    loop {
        line.clear();
        assert!(rd.read_line(&mut line).unwrap() > 0, "stream closed");
        let ev: NetEvent = serde_json::from_str(&line).unwrap();
        match ev.kind {
            EventKind::Gap => {
                gaps += 1;
                lost += ev.detail["count"].parse::<u64>().unwrap();
            }
            _ => {
                seen += 1;
                if ev.detail["address"] == "19999" {
                    break;
                }
            }
        }
    }
    assert!(gaps >= 1 && lost > 0, "seen {seen}, lost {lost}");
    // Other tests' events may be among the lost ones, never missing from the count.
    assert!(seen + lost >= 20_000, "seen {seen}, lost {lost}");
    drop(r);
}
