//! The gateway's Ed25519 signing key, kept in the state directory.
//!
//! The file holds the 32-byte secret key as 64 lower-case hex digits and a newline. It is created
//! with mode 0600 under a temporary name and hard-linked into place, so a reader never sees a
//! half-written key and two gateways starting at once end up with the same key (the second link
//! fails and that gateway loads the winner's key). A key file that group or others can access is
//! refused: whoever can read it can forge chain heads.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;

use crate::error::StoreError;

/// The key file's name inside the state directory.
pub(crate) const KEY_FILE: &str = "signing.key";

/// A key file is 65 bytes; anything much larger is not ours and is not read whole.
const MAX_KEY_FILE_BYTES: u64 = 1024;

fn key_io(path: &Path, during: &'static str, source: std::io::Error) -> StoreError {
    StoreError::KeyIo {
        path: path.to_path_buf(),
        during,
        source: Arc::new(source),
    }
}

/// Loads the key at `state_dir/signing.key`, creating it first if it does not exist.
pub(crate) fn load_or_create(state_dir: &Path) -> Result<SigningKey, StoreError> {
    let path = state_dir.join(KEY_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => load(&path),
        Err(e) if e.kind() == ErrorKind::NotFound => create(state_dir, &path),
        Err(e) => Err(key_io(&path, "read", e)),
    }
}

fn load(path: &Path) -> Result<SigningKey, StoreError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| key_io(path, "read", e))?;
    if !meta.file_type().is_file() {
        return Err(StoreError::KeyInvalid {
            path: path.to_path_buf(),
            reason: "it is not a regular file (a symbolic link or a directory)",
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| key_io(path, "read", e))?;
    let invalid = |reason| StoreError::KeyInvalid {
        path: path.to_path_buf(),
        reason,
    };
    let bytes =
        hex::decode(text.trim_end_matches('\n')).map_err(|_| invalid("it is not 64 hex digits"))?;
    let secret =
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| invalid("it is not 64 hex digits"))?;
    Ok(SigningKey::from_bytes(&secret))
}

fn create(state_dir: &Path, path: &Path) -> Result<SigningKey, StoreError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|source| StoreError::Random { source })?;
    let key = SigningKey::from_bytes(&secret);

    let tmp = temp_path(path);
    // A leftover from a crashed start under the same pid; it never held a key in use.
    if let Err(e) = std::fs::remove_file(&tmp)
        && e.kind() != ErrorKind::NotFound
    {
        return Err(key_io(&tmp, "create", e));
    }
    let written = write_new(&tmp, &secret);
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let cleanup = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        // Another gateway created the key first: use that one.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return load(path),
        Err(e) => return Err(key_io(path, "create", e)),
    }
    cleanup.map_err(|e| key_io(&tmp, "create", e))?;
    File::open(state_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| key_io(path, "create", e))?;
    Ok(key)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp{}", std::process::id()));
    PathBuf::from(name)
}

fn write_new(tmp: &Path, secret: &[u8; 32]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(format!("{}\n", hex::encode(secret)).as_bytes())?;
    file.sync_all()
}
