//! Artifacts in any S3-compatible store (`object_store`): multipart uploads
//! (5 MiB parts, at most two in flight, so an upload holds ~10 MiB whatever
//! its size), ranged streamed reads, deletes.
//!
//! Configured by `--backup-store s3://BUCKET?endpoint=URL&region=R`; the
//! credentials come from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`) or from a file of such `KEY=VALUE` lines
//! (`--backup-credentials FILE`); they are never logged.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

use super::objects::{ByteStream, ObjectError, ObjectWriter, Objects, check_key};

/// S3's smallest part (but the last).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug)]
pub struct S3 {
    store: Arc<AmazonS3>,
    describe: String,
}

fn s3_error(what: &str, e: object_store::Error) -> ObjectError {
    ObjectError::Io {
        what: format!("S3 {what}"),
        source: std::io::Error::other(e.to_string()),
    }
}

impl S3 {
    /// `url` is `s3://BUCKET[?endpoint=URL&region=REGION]`; `credentials`
    /// the text of a credentials file, if one was given.
    pub fn open(url: &str, credentials: Option<&str>) -> Result<S3, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("{url:?}: the backup store must be s3://BUCKET[?endpoint=URL&region=R]")
        })?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains('/') {
            return Err(format!("{url:?}: no bucket name"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut endpoint = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) => {
                    builder = builder
                        .with_endpoint(v)
                        .with_allow_http(v.starts_with("http://"));
                    endpoint = Some(v.to_string());
                }
                Some(("region", v)) => builder = builder.with_region(v),
                _ => {
                    return Err(format!(
                        "{url:?}: unknown option {pair:?} (endpoint, region)"
                    ));
                }
            }
        }
        if let Some(text) = credentials {
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                match line.split_once('=') {
                    Some(("AWS_ACCESS_KEY_ID", v)) => {
                        builder = builder.with_access_key_id(v.trim())
                    }
                    Some(("AWS_SECRET_ACCESS_KEY", v)) => {
                        builder = builder.with_secret_access_key(v.trim())
                    }
                    _ => {
                        return Err(
                            "the credentials file holds lines AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=…"
                                .into(),
                        );
                    }
                }
            }
        }
        // A store that is down fails the run within ~20 s, not minutes.
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        };
        let store = builder
            .with_retry(retry)
            .build()
            .map_err(|e| format!("S3 store: {e}"))?;
        Ok(S3 {
            store: Arc::new(store),
            describe: format!(
                "S3 bucket {bucket}{}",
                endpoint.map(|e| format!(" at {e}")).unwrap_or_default()
            ),
        })
    }
}

struct S3Writer {
    upload: Option<WriteMultipart>,
}

impl ObjectWriter for S3Writer {
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, Result<(), ObjectError>> {
        Box::pin(async move {
            let upload = self.upload.as_mut().expect("open until finished");
            upload
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| s3_error("upload", e))?;
            upload.write(chunk);
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ObjectError>> {
        let upload = self.upload.take().expect("open until finished");
        Box::pin(async move {
            upload
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| s3_error("upload", e))
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let upload = self.upload.take();
        Box::pin(async move {
            if let Some(u) = upload {
                let _ = u.abort().await;
            }
        })
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // An unfinished multipart upload is aborted, never completed.
        if let Some(u) = self.upload.take() {
            tokio::spawn(async move {
                let _ = u.abort().await;
            });
        }
    }
}

impl Objects for S3 {
    fn create<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, ObjectError>> {
        Box::pin(async move {
            check_key(key)?;
            let upload = self
                .store
                .put_multipart(&Path::from(key))
                .await
                .map_err(|e| s3_error("upload", e))?;
            Ok(Box::new(S3Writer {
                upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES)),
            }) as Box<dyn ObjectWriter>)
        })
    }

    fn size<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, ObjectError>> {
        Box::pin(async move {
            check_key(key)?;
            match self.store.head(&Path::from(key)).await {
                Ok(meta) => Ok(meta.size),
                Err(object_store::Error::NotFound { .. }) => {
                    Err(ObjectError::NotFound(key.to_string()))
                }
                Err(e) => Err(s3_error("head", e)),
            }
        })
    }

    fn read<'a>(
        &'a self,
        key: &'a str,
        start: u64,
        end: u64,
    ) -> BoxFuture<'a, Result<ByteStream, ObjectError>> {
        Box::pin(async move {
            check_key(key)?;
            if start >= end {
                return Ok(Box::pin(futures_util::stream::empty()) as ByteStream);
            }
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..end)),
                ..GetOptions::default()
            };
            let got = match self.store.get_opts(&Path::from(key), options).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(ObjectError::NotFound(key.to_string()));
                }
                Err(e) => return Err(s3_error("read", e)),
            };
            let stream = got
                .into_stream()
                .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
            Ok(Box::pin(stream) as ByteStream)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), ObjectError>> {
        Box::pin(async move {
            check_key(key)?;
            match self.store.delete(&Path::from(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(s3_error("delete", e)),
            }
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
