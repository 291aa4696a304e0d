//! Per-call cache of normalized readings, so a value is normalized once however many rules
//! look at it.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;

use crate::compile::ServerInfo;
use crate::normalize::Uncertain;
use crate::normalize::path::{PathContext, PathReading, PathResolver, path_readings};
use crate::normalize::shell::simple_command_words;
use crate::normalize::url::{UrlReading, url_readings};

type Cached<T> = Rc<Result<T, Uncertain>>;
type Cache<T> = RefCell<Vec<(usize, Cached<T>)>>;

/// A cache keyed by the address of the JSON string being read; the call outlives the cache.
/// One per evaluation, borrowed by every rule's scope.
pub(crate) struct Readings<'a> {
    server: &'a ServerInfo,
    resolver: Option<&'a dyn PathResolver>,
    paths: Cache<Vec<PathReading>>,
    urls: Cache<Vec<UrlReading>>,
    words: Cache<Vec<String>>,
}

fn key(v: &Value) -> usize {
    std::ptr::from_ref(v) as usize
}

fn cached<T>(
    store: &RefCell<Vec<(usize, Cached<T>)>>,
    k: usize,
    compute: impl FnOnce() -> Result<T, Uncertain>,
) -> Cached<T> {
    if let Some((_, hit)) = store.borrow().iter().find(|(key, _)| *key == k) {
        return Rc::clone(hit);
    }
    let value = Rc::new(compute());
    store.borrow_mut().push((k, Rc::clone(&value)));
    value
}

impl<'a> Readings<'a> {
    pub(crate) fn new(server: &'a ServerInfo, resolver: Option<&'a dyn PathResolver>) -> Self {
        Readings {
            server,
            resolver,
            paths: RefCell::default(),
            urls: RefCell::default(),
            words: RefCell::default(),
        }
    }

    pub(crate) fn path(&self, v: &Value, s: &str) -> Cached<Vec<PathReading>> {
        cached(&self.paths, key(v), || {
            let ctx = PathContext {
                cwd: self.server.spec.cwd.as_deref(),
                home: self.server.spec.home.as_deref(),
                resolver: self.resolver,
            };
            path_readings(s, &ctx)
        })
    }

    pub(crate) fn url(&self, v: &Value, s: &str) -> Cached<Vec<UrlReading>> {
        cached(&self.urls, key(v), || url_readings(s))
    }

    pub(crate) fn words(&self, v: &Value, s: &str) -> Cached<Vec<String>> {
        cached(&self.words, key(v), || simple_command_words(s))
    }
}
