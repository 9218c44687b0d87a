//! The cost of one audit append on real SQLite: the chain's hash, the
//! insert, its commit, and recording the head outside the database.
//! Prints numbers; asserts nothing.

use std::time::Instant;

use twinbay_hub::audit::anchor::Anchor;
use twinbay_hub::audit::{ActorKind, Outcome, Record};
use twinbay_hub::store::Store;

const APPENDS: u32 = 2_000;

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("twinbay-bench-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir).await.unwrap();
    let record = || {
        Record::new(ActorKind::User, "admin", "session.sign_in", Outcome::Ok)
            .client("127.0.0.1", "bench/1")
            .target("admin")
    };
    // Warm up the file, the pool and the page cache.
    for _ in 0..100 {
        store.audit(record()).await.unwrap();
    }
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..APPENDS {
            store.audit(record()).await.unwrap();
        }
        rounds.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(APPENDS));
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "audit append: median {:.1} µs, best {:.1} µs, worst {:.1} µs ({} rounds of {APPENDS})",
        rounds[2],
        rounds[0],
        rounds[4],
        rounds.len()
    );

    // The part that writes `audit.head`, alone.
    let head = store.audit_head().await.unwrap();
    let anchor = Anchor::new(&dir);
    let start = Instant::now();
    for _ in 0..10 * APPENDS {
        anchor.record(&head);
    }
    println!(
        "recording the head alone: {:.1} µs",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(10 * APPENDS)
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
