//! Per-call cache of normalized readings, so a value is normalized once however many rules
//! look at it.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use serde_json::Value;

use crate::compile::ServerInfo;
use crate::normalize::Uncertain;
use crate::normalize::path::{PathContext, PathReading, PathResolver, path_readings};
use crate::normalize::shell::simple_command_words;
use crate::normalize::url::{UrlReading, url_readings};

type Computed<T> = Result<T, Uncertain>;

/// One kind of reading, keyed by the address of the JSON string read. Most calls read one value
/// of a kind (one path, one URL), so the first is kept in place and lent out by reference; any
/// further ones are shared through `Rc`, as the cache may grow while one is in use.
struct Cache<T> {
    first: OnceCell<(usize, Computed<T>)>,
    more: RefCell<Vec<(usize, Rc<Computed<T>>)>>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            first: OnceCell::new(),
            more: RefCell::default(),
        }
    }
}

/// A cached reading: lent from the first slot or shared from the others.
pub(crate) enum Cached<'r, T> {
    Lent(&'r Computed<T>),
    Shared(Rc<Computed<T>>),
}

impl<T> AsRef<Computed<T>> for Cached<'_, T> {
    fn as_ref(&self) -> &Computed<T> {
        match self {
            Cached::Lent(r) => r,
            Cached::Shared(rc) => rc,
        }
    }
}

impl<T> Cache<T> {
    fn get(&self, k: usize, compute: impl FnOnce() -> Computed<T>) -> Cached<'_, T> {
        match self.first.get() {
            Some((key, hit)) if *key == k => return Cached::Lent(hit),
            Some(_) => {}
            None => {
                // `compute` normalizes a string and never reads this cache, so the cell is
                // still empty when it returns.
                let (_, value) = self.first.get_or_init(|| (k, compute()));
                return Cached::Lent(value);
            }
        }
        if let Some((_, hit)) = self.more.borrow().iter().find(|(key, _)| *key == k) {
            return Cached::Shared(Rc::clone(hit));
        }
        let value = Rc::new(compute());
        self.more.borrow_mut().push((k, Rc::clone(&value)));
        Cached::Shared(value)
    }
}

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

impl<'a> Readings<'a> {
    pub(crate) fn new(server: &'a ServerInfo, resolver: Option<&'a dyn PathResolver>) -> Self {
        Readings {
            server,
            resolver,
            paths: Cache::default(),
            urls: Cache::default(),
            words: Cache::default(),
        }
    }

    pub(crate) fn path(&self, v: &Value, s: &str) -> Cached<'_, Vec<PathReading>> {
        self.paths.get(key(v), || {
            let ctx = PathContext {
                cwd: self.server.spec.cwd.as_deref(),
                home: self.server.spec.home.as_deref(),
                resolver: self.resolver,
            };
            path_readings(s, &ctx)
        })
    }

    pub(crate) fn url(&self, v: &Value, s: &str) -> Cached<'_, Vec<UrlReading>> {
        self.urls.get(key(v), || url_readings(s))
    }

    pub(crate) fn words(&self, v: &Value, s: &str) -> Cached<'_, Vec<String>> {
        self.words.get(key(v), || simple_command_words(s))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn get(cache: &Cache<String>, k: usize, computed: &Cell<u32>) -> Computed<String> {
        cache
            .get(k, || {
                computed.set(computed.get() + 1);
                Ok(format!("reading of {k}"))
            })
            .as_ref()
            .clone()
    }

    #[test]
    fn each_value_is_read_once_whether_first_or_not() {
        let cache = Cache::default();
        let computed = Cell::new(0);
        for round in 0..3 {
            for k in [7, 9, 11, 7] {
                assert_eq!(
                    get(&cache, k, &computed),
                    Ok(format!("reading of {k}")),
                    "{round}"
                );
            }
        }
        assert_eq!(computed.get(), 3);
    }

    #[test]
    fn an_uncertain_reading_is_cached_too() {
        let cache: Cache<String> = Cache::default();
        let computed = Cell::new(0);
        for k in [1, 2, 1, 2] {
            let got = cache.get(k, || {
                computed.set(computed.get() + 1);
                Err(Uncertain::new(format!("no reading of {k}")))
            });
            assert_eq!(
                got.as_ref(),
                &Err(Uncertain::new(format!("no reading of {k}")))
            );
        }
        assert_eq!(computed.get(), 2);
    }
}
