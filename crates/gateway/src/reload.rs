//! Hot reload: the policy file is polled; a changed file that loads and passes the self-test
//! replaces the policy, a broken one keeps the last good policy and says why.

use std::path::PathBuf;

use portcullis_policy::CompiledPolicy;

use crate::config::compile_policy;
use crate::selftest::self_test;

/// Watches one policy file by content. Polling (rather than inotify) works the same on every
/// platform and on network file systems, and comparing content rather than mtime alone catches
/// edits within one timestamp tick and ignores `touch`.
#[derive(Debug)]
pub(crate) struct Reloader {
    path: PathBuf,
    /// The text last seen, good or bad, so a broken file is reported once, not every second.
    seen: String,
    /// Whether the last read failed, so the failure is reported once.
    unreadable: bool,
}

impl Reloader {
    pub(crate) fn new(path: PathBuf, text: String) -> Self {
        Self {
            path,
            seen: text,
            unreadable: false,
        }
    }

    /// The new policy if the file changed and the change is good.
    pub(crate) fn poll(&mut self) -> Option<CompiledPolicy> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                self.unreadable = false;
                text
            }
            Err(error) => {
                if !self.unreadable {
                    tracing::error!(path = %self.path.display(), %error, "cannot read the policy file; keeping the last good policy");
                    self.unreadable = true;
                }
                return None;
            }
        };
        if text == self.seen {
            return None;
        }
        self.seen.clone_from(&text);
        match compile_policy(&text, &self.path) {
            Ok(policy) => match self_test(&policy) {
                Ok(()) => {
                    tracing::info!(sha256 = policy.sha256(), "policy reloaded");
                    Some(policy)
                }
                Err(why) => {
                    tracing::error!(
                        "the changed policy fails the self-test ({why}); keeping the last good policy"
                    );
                    None
                }
            },
            Err(error) => {
                tracing::error!(
                    "the changed policy does not load; keeping the last good policy:\n{error}"
                );
                None
            }
        }
    }
}
