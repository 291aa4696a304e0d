//! [`FsResolver`]: symlink resolution against the real filesystem, for stdio servers.
//!
//! A stdio server shares the gateway's filesystem, so `/workspace/link/passwd` with
//! `link -> /etc` opens `/etc/passwd` whatever the string says. The policy engine asks a
//! [`PathResolver`] for the path the kernel would open and demands that allow-side conditions hold
//! for it too (DESIGN §3.4). Resolution walks the path one component at a time, as the kernel does,
//! because `std::fs::canonicalize` fails on paths that do not exist yet — and a new file under a
//! linked directory is exactly the write that escapes.

use std::collections::VecDeque;
use std::io::ErrorKind;

use portcullis_policy::normalize::path::{PathResolver, Resolution};

/// Symlinks followed before a path is called a loop: Linux's `MAXSYMLINKS`, so the gateway gives
/// up exactly where the kernel would.
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Resolves symlinks by reading the real filesystem (`symlink_metadata`, `read_link`).
///
/// - A symlink is replaced by its target; an absolute target restarts at `/`, a relative one is
///   read from the link's directory. More than [`MAX_SYMLINK_HOPS`] links is a loop: uncertain.
/// - A component that does not exist (or sits under a non-directory) ends the filesystem walk: the
///   rest is appended lexically, so a new file under a linked directory resolves through the link.
/// - A dangling link resolves to its target, because a write through it creates the target.
/// - Any other error (permission denied, I/O) is uncertain: the gateway cannot see what the
///   server would open, and an error must never read as "no symlink here".
#[derive(Debug, Clone, Copy, Default)]
pub struct FsResolver;

impl FsResolver {
    /// A resolver over the real filesystem.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

impl PathResolver for FsResolver {
    fn resolve(&self, absolute: &str) -> Resolution {
        if !absolute.starts_with('/') {
            return Resolution::Uncertain(format!(
                "`{}` is not an absolute path",
                absolute.escape_debug()
            ));
        }
        let mut pending: VecDeque<String> = components(absolute);
        let mut resolved: Vec<String> = Vec::new();
        // Length of `resolved` at which the first missing component sits; from there on nothing
        // exists, so the filesystem is not consulted until `..` climbs back above it.
        let mut missing_from: Option<usize> = None;
        let mut hops = 0usize;
        while let Some(component) = pending.pop_front() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    if missing_from.is_some_and(|at| resolved.len() <= at) {
                        missing_from = None;
                    }
                    continue;
                }
                _ => {}
            }
            if missing_from.is_some() {
                resolved.push(component);
                continue;
            }
            let candidate = join(&resolved, &component);
            match std::fs::symlink_metadata(&candidate) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    hops = hops.saturating_add(1);
                    if hops > MAX_SYMLINK_HOPS {
                        return Resolution::Uncertain(format!(
                            "more than {MAX_SYMLINK_HOPS} symlinks (a loop) at `{}`",
                            candidate.escape_debug()
                        ));
                    }
                    let target = match std::fs::read_link(&candidate) {
                        Ok(target) => target,
                        Err(err) => {
                            return Resolution::Uncertain(format!(
                                "cannot read the symlink `{}`: {err}",
                                candidate.escape_debug()
                            ));
                        }
                    };
                    let Some(target) = target.to_str() else {
                        return Resolution::Uncertain(format!(
                            "the symlink `{}` points at a path that is not utf-8",
                            candidate.escape_debug()
                        ));
                    };
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    for part in components(target).into_iter().rev() {
                        pending.push_front(part);
                    }
                }
                Ok(_) => resolved.push(component),
                // ENOTDIR: a component under a regular file. The server's open fails too; what
                // matters is the lexical path, which the policy also sees.
                Err(err)
                    if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                {
                    missing_from = Some(resolved.len());
                    resolved.push(component);
                }
                Err(err) => {
                    return Resolution::Uncertain(format!(
                        "cannot inspect `{}`: {err}",
                        candidate.escape_debug()
                    ));
                }
            }
        }
        Resolution::Resolved(join_all(&resolved))
    }
}

fn components(path: &str) -> VecDeque<String> {
    path.split('/').map(str::to_owned).collect()
}

fn join(resolved: &[String], component: &str) -> String {
    let mut path = join_all(resolved);
    if !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(component);
    path
}

fn join_all(resolved: &[String]) -> String {
    format!("/{}", resolved.join("/"))
}

#[cfg(test)]
mod tests;
