//! Certificate rotation without a restart: every `poll` the watcher hashes the files each
//! TLS config was built from and rebuilds the configs whose files changed; SIGHUP rebuilds
//! them all at once. A rebuild that fails (a half-written or mismatched pair, a missing
//! file) keeps the previous config, logs an error and counts
//! `tether_tls_reloads_total{outcome="failed"}`; the next change of the files tries again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the files are checked. cert-manager renews days ahead and the kubelet takes
/// up to a minute to refresh a mounted Secret, so seconds here cost nothing.
pub const POLL: Duration = Duration::from_secs(5);

/// One TLS config to keep fresh.
pub struct Reloadable {
    /// `client`, `admin` or `peer`: the log field and metric label.
    pub listener: &'static str,
    pub files: Vec<PathBuf>,
    /// Rebuilds the config from `files` and swaps it in, or says why it did not.
    pub reload: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// Watches until `stop`. Installs the SIGHUP handler, so from here on SIGHUP reloads
/// instead of ending the process.
pub async fn watch(
    items: Vec<Reloadable>,
    metrics: Arc<Metrics>,
    poll: Duration,
    stop: CancellationToken,
) {
    if items.is_empty() {
        return;
    }
    let mut seen: Vec<u64> = items.iter().map(|i| fingerprint(&i.files)).collect();
    let mut hangup = Hangup::new();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let all = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => false,
            _ = hangup.recv() => true,
        };
        for (item, last) in items.iter().zip(seen.iter_mut()) {
            let now = fingerprint(&item.files);
            if !all && now == *last {
                continue;
            }
            *last = now;
            let why = if all { "SIGHUP" } else { "files changed" };
            let outcome = match (item.reload)() {
                Ok(()) => {
                    tracing::info!(listener = item.listener, why, "TLS certificate reloaded");
                    "ok"
                }
                Err(error) => {
                    tracing::error!(
                        listener = item.listener,
                        why,
                        %error,
                        "TLS certificate reload failed; still serving the previous certificate"
                    );
                    "failed"
                }
            };
            metrics.tls_reloaded(item.listener, outcome);
        }
    }
}

/// A hash of the files' contents; an unreadable file hashes as its error, so a file that
/// disappears counts as a change (and its reload fails loudly).
fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for path in files {
        match std::fs::read(path) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().to_string().hash(&mut h),
        }
    }
    h.finish()
}

/// SIGHUP where there is one; elsewhere (or if the handler cannot be installed) never.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|e| tracing::warn!(error = %e, "no SIGHUP handler; polling only"))
                .ok();
            Hangup { signal }
        }
        #[cfg(not(unix))]
        Hangup {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            signal.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::TlsReload;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A changed file triggers one reload; unchanged files none; a failing reload is
    /// counted as failed and retried only when the files change again.
    #[tokio::test(start_paused = true)]
    async fn changed_files_are_reloaded_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "one").expect("write");
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let item = Reloadable {
            listener: "client",
            files: vec![file.clone()],
            reload: Box::new(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    Ok(())
                } else {
                    Err("bad pem".into())
                }
            }),
        };
        let metrics = Arc::new(Metrics::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(vec![item], metrics.clone(), POLL, stop.clone()));
        let ticks = |n: u32| tokio::time::sleep(POLL * n + Duration::from_millis(1));
        ticks(2).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing changed");
        std::fs::write(&file, "two").expect("write");
        ticks(2).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        std::fs::write(&file, "three").expect("write");
        ticks(3).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a failure is not retried every tick"
        );
        let count = |outcome| {
            let labels = TlsReload {
                listener: "client",
                outcome,
            };
            metrics.tls_reloads.get_or_create(&labels).get()
        };
        assert_eq!((count("ok"), count("failed")), (1, 1));
        stop.cancel();
        task.await.expect("watcher");
    }
}
