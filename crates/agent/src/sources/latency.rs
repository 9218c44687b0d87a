//! Latency to configured targets, by timing a TCP connect (no privileges
//! needed, unlike ICMP, which a rootless agent usually may not send).

use std::time::{Duration, Instant};

use twinbay_proto::model::LatencySample;

/// Connects to each `host:port` target at once; a target that does not
/// answer within `timeout` has no time.
pub async fn probe(targets: &[String], timeout: Duration) -> Vec<LatencySample> {
    let probes = targets.iter().map(|target| async move {
        let start = Instant::now();
        let ok = matches!(
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target.as_str())).await,
            Ok(Ok(_))
        );
        LatencySample {
            target: target.clone(),
            ms: ok.then(|| start.elapsed().as_secs_f32() * 1000.0),
        }
    });
    futures_util::future::join_all(probes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn times_reachable_targets_and_marks_the_rest() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().to_string();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let samples = probe(&[open.clone(), closed.clone()], Duration::from_secs(1)).await;
        assert_eq!(samples[0].target, open);
        assert!(samples[0].ms.is_some_and(|ms| ms < 1000.0));
        assert_eq!(samples[1].ms, None);
    }
}
