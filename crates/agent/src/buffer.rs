//! A bounded buffer of samples that waits out disconnections.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use twinbay_proto::model::Sample;

/// One hour of samples at the default 5 s interval.
pub const DEFAULT_CAPACITY: usize = 720;

/// Samples not yet sent. When full, the oldest sample is dropped: recent data
/// is worth more than old data, and memory stays bounded.
#[derive(Debug)]
pub struct SampleBuffer {
    inner: Mutex<Inner>,
    pub notify: Notify,
}

#[derive(Debug)]
struct Inner {
    samples: VecDeque<Sample>,
    capacity: usize,
    dropped: u64,
}

impl SampleBuffer {
    pub fn new(capacity: usize) -> Self {
        SampleBuffer {
            inner: Mutex::new(Inner {
                samples: VecDeque::with_capacity(capacity.min(64)),
                capacity: capacity.max(1),
                dropped: 0,
            }),
            notify: Notify::new(),
        }
    }

    pub fn push(&self, sample: Sample) {
        {
            let mut inner = self.lock();
            if inner.samples.len() == inner.capacity {
                inner.samples.pop_front();
                inner.dropped += 1;
            }
            inner.samples.push_back(sample);
        }
        self.notify.notify_one();
    }

    /// Takes up to `max` of the oldest samples.
    pub fn take(&self, max: usize) -> Vec<Sample> {
        let mut inner = self.lock();
        let n = inner.samples.len().min(max);
        inner.samples.drain(..n).collect()
    }

    /// Puts samples that could not be sent back in front, within capacity.
    pub fn put_back(&self, batch: Vec<Sample>) {
        let mut inner = self.lock();
        for sample in batch.into_iter().rev() {
            if inner.samples.len() == inner.capacity {
                inner.dropped += 1;
                continue;
            }
            inner.samples.push_front(sample);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts_ms: i64) -> Sample {
        Sample {
            ts_ms,
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_newest_within_capacity_and_in_order() {
        let buf = SampleBuffer::new(3);
        for t in 1..=5 {
            buf.push(at(t));
        }
        assert_eq!(buf.len(), 3);
        assert_eq!(buf.dropped(), 2);
        let first = buf.take(2);
        assert_eq!(first.iter().map(|s| s.ts_ms).collect::<Vec<_>>(), [3, 4]);
        buf.push(at(6));
        buf.put_back(first);
        // Full again: 3 and 4 go back in front of 5 and 6 as far as room allows.
        assert_eq!(
            buf.take(10).iter().map(|s| s.ts_ms).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert!(buf.is_empty());
    }
}
