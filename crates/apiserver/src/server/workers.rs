//! Serving threads. Each runs a single-threaded Tokio runtime of its own; a connection is
//! handed to the thread with the fewest open connections and stays there, so the TLS of both
//! legs, its requests and their backend queries are handled by one thread without waking
//! another for every step. A multi-threaded runtime spends a good part of each request's CPU
//! time waking and parking its workers when requests come one at a time.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::watch;

/// The serving threads; they stop when this is dropped, closing what they still serve.
pub(crate) struct Workers {
    workers: Arc<[Worker]>,
    stop: watch::Sender<bool>,
}

struct Worker {
    handle: Handle,
    /// Connections open on this thread.
    connections: AtomicUsize,
}

/// Decrements the connection count of its thread when the connection ends.
struct Placed {
    workers: Arc<[Worker]>,
    index: usize,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.workers[self.index]
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// How far ahead a serving thread's next timer wake-up always is, at most. Tokio wakes its
/// own timer driver (a write to the thread's eventfd, then one more wait) whenever a timer is
/// set to fire before the driver's next wake-up, and a request sets several (its deadline,
/// its backend's); with a tick this often, only timers shorter than it do. One wake-up a
/// second when idle; one write and a wait fewer for every request.
const TIMER_HORIZON: std::time::Duration = std::time::Duration::from_secs(1);

/// As many as the cores this process may use (its cgroup's CPU limit included), from one to
/// eight: each thread serves thousands of requests a second, and keeps its own connections to
/// each backend.
pub(crate) fn default_count() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, 8)
}

impl Workers {
    /// Start `count` serving threads (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<Workers> {
        let (stop, stopped) = watch::channel(false);
        let mut workers = Vec::new();
        for i in 0..count.max(1) {
            // The runtime is built on its own thread, and its handle sent back: a runtime
            // must not be dropped inside another (here, if the thread could not start).
            let (started, handle) = std::sync::mpsc::sync_channel(1);
            let mut stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("promhpa-serve-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return;
                        }
                    };
                    let _ = started.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async move {
                        let stop = stopped.wait_for(|s| *s);
                        tokio::pin!(stop);
                        let mut tick = tokio::time::interval(TIMER_HORIZON);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            tokio::select! {
                                _ = &mut stop => break,
                                _ = tick.tick() => {}
                            }
                        }
                    });
                })?;
            let handle = handle.recv().map_err(|_| {
                std::io::Error::other(format!("serving thread {i} ended before it started"))
            })??;
            workers.push(Worker {
                handle,
                connections: AtomicUsize::new(0),
            });
        }
        Ok(Workers {
            workers: workers.into(),
            stop,
        })
    }

    /// Run `connection` on the thread with the fewest open connections, until it ends.
    pub(crate) fn place<F>(&self, connection: impl FnOnce() -> F + Send + 'static)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.connections.load(Ordering::Relaxed))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let worker = &self.workers[index];
        worker.connections.fetch_add(1, Ordering::Relaxed);
        let placed = Placed {
            workers: self.workers.clone(),
            index,
        };
        // The connection's future is made on its own thread: what it creates (the socket's
        // registration, timers, spawned tasks) belongs to that thread's runtime.
        worker.handle.spawn(async move {
            let _placed = placed;
            connection().await
        });
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::{mpsc, oneshot};

    /// Place a connection that reports the thread it runs on and lasts until `end` fires.
    fn place_reporting(
        workers: &Workers,
        threads: &mpsc::UnboundedSender<String>,
    ) -> oneshot::Sender<()> {
        let (end, ended) = oneshot::channel::<()>();
        let threads = threads.clone();
        workers.place(move || async move {
            let name = std::thread::current()
                .name()
                .unwrap_or_default()
                .to_string();
            let _ = threads.send(name);
            let _ = ended.await;
        });
        end
    }

    #[tokio::test]
    async fn connections_go_to_the_thread_with_the_fewest() {
        let workers = Workers::start(2).unwrap_or_else(|e| panic!("{e}"));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let first = place_reporting(&workers, &tx);
        assert_eq!(rx.recv().await.unwrap_or_default(), "promhpa-serve-0");
        let _second = place_reporting(&workers, &tx);
        assert_eq!(rx.recv().await.unwrap_or_default(), "promhpa-serve-1");
        let _third = place_reporting(&workers, &tx);
        assert_eq!(rx.recv().await.unwrap_or_default(), "promhpa-serve-0");
        // The first connection ends: its thread has one again, the other two.
        let _ = first.send(());
        let open = |i: usize| workers.workers[i].connections.load(Ordering::Relaxed);
        for _ in 0..200 {
            if open(0) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!((open(0), open(1)), (1, 1));
        let _fourth = place_reporting(&workers, &tx);
        assert_eq!(rx.recv().await.unwrap_or_default(), "promhpa-serve-0");
    }

    #[tokio::test]
    async fn dropping_the_workers_closes_what_they_serve() {
        let workers = Workers::start(1).unwrap_or_else(|e| panic!("{e}"));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut end = place_reporting(&workers, &tx);
        assert_eq!(rx.recv().await.unwrap_or_default(), "promhpa-serve-0");
        drop(workers);
        // The connection's future is dropped with its thread's runtime.
        tokio::time::timeout(Duration::from_secs(10), end.closed())
            .await
            .unwrap_or_else(|_| panic!("the connection outlived its thread"));
    }
}
