//! Private files in the data dir.

use std::fs;
use std::path::Path;

use crate::HubError;

pub fn create_private_dir(dir: &Path) -> Result<(), HubError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| HubError::io(dir, e))
}

/// Writes a file only the owner can read, through a rename so it is never half there.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    twinbay_store::fsutil::write_private(path, bytes).map_err(|e| HubError::io(path, e))
}

/// The next `len` bytes of `file` as a stream of chunks of up to `chunk`
/// bytes; a file that ends early is an `UnexpectedEof` error.
pub fn read_stream(
    file: tokio::fs::File,
    len: u64,
    chunk: usize,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold((file, len), move |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(chunk as u64) as usize];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file is shorter than it was",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
}
