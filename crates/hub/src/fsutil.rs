//! Private files in the data dir.

use std::fs;
use std::io::Write;
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
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| HubError::io(path, e))
}
