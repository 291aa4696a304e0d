//! Property of `normalize_no_panic`: the path, URL, shell and secret readings never panic, and
//! what they return is well-formed: every path reading is absolute and free of `.`/`..`/empty
//! components, there are at most 32 of them, and shell words never come back from a string that
//! holds a shell operator outside quotes.

use portcullis_policy::normalize::path::{MapResolver, PathContext, path_readings};
use portcullis_policy::normalize::secret::find_secret;
use portcullis_policy::normalize::shell::simple_command_words;
use portcullis_policy::normalize::url::url_readings;

/// Panics when the property fails for `data`.
pub(crate) fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fs = MapResolver::new();
    fs.add_symlink("/ws/out", "/etc")
        .add_symlink("/ws/rel", "../secret")
        .add_symlink("/ws/loop", "/ws/loop");
    for resolver in [
        None,
        Some(&fs as &dyn portcullis_policy::normalize::path::PathResolver),
    ] {
        let ctx = PathContext {
            cwd: Some("/ws"),
            home: Some("/home/u"),
            resolver,
        };
        if let Ok(readings) = path_readings(text, &ctx) {
            assert!(!readings.is_empty(), "no reading for {text:?}");
            assert!(
                readings.len() <= 32,
                "{} readings for {text:?}",
                readings.len()
            );
            for reading in &readings {
                let path = &reading.path;
                assert!(
                    path.starts_with('/'),
                    "relative reading {path:?} of {text:?}"
                );
                assert!(
                    path == "/"
                        || path
                            .split('/')
                            .skip(1)
                            .all(|c| !c.is_empty() && c != "." && c != ".."),
                    "unnormalized reading {path:?} of {text:?}"
                );
            }
        }
    }
    let _ = url_readings(text);
    if let Ok(words) = simple_command_words(text) {
        let unquoted_operator = text.contains(';') && !text.contains(['\'', '"', '\\']);
        assert!(!unquoted_operator, "words {words:?} from {text:?}");
    }
    let _ = find_secret(text);
}
