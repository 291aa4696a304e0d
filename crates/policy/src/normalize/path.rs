//! Path readings. CONTRACT STUB: the helper implementing this module replaces the bodies.

use super::Uncertain;

/// Which transformation produced a reading (shown in decision traces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathReadingKind {
    /// `.`/`..`/`//`/trailing separators resolved lexically, joined to `cwd` if relative.
    Lexical,
    /// `\` treated as a separator (Windows servers, some path libraries).
    Backslash,
    /// Percent-decoded (once or repeatedly, as a URL-minded server might).
    PercentDecoded,
    /// Unicode NFC-normalized (NFD input and NFC input name the same file on macOS).
    Nfc,
    /// Unicode NFKC-normalized (fullwidth and other compatibility forms folded).
    Nfkc,
    /// Windows trimming of trailing dots and spaces in each component.
    WindowsTrim,
    /// `~` expanded to the server's home directory.
    TildeExpanded,
    /// Symlinks resolved through the [`PathResolver`].
    Resolved,
}

/// One plausible absolute, lexically normalized path a server might act on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathReading {
    /// The absolute, normalized path (`/`-separated, no `.`/`..`, no trailing `/` except root).
    pub path: String,
    /// How this reading came about.
    pub kind: PathReadingKind,
}

/// What the resolver says about a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The resolved path (equal to the input when no symlink is involved).
    Resolved(String),
    /// Resolution failed in a way that leaves the real target uncertain.
    Uncertain(String),
}

/// Resolves symlinks. The policy crate does no I/O: the gateway supplies an implementation that
/// reads the real filesystem, tests supply an in-memory one.
pub trait PathResolver {
    /// Resolve every symlink in `absolute` (already lexically normalized). A path that does not
    /// exist resolves its longest existing prefix and appends the rest (a new file under a linked
    /// directory); a dangling link resolves to its target; loops are `Uncertain`.
    fn resolve(&self, absolute: &str) -> Resolution;
}

/// Where and how a server will interpret a path.
#[derive(Clone, Copy, Default)]
pub struct PathContext<'a> {
    /// The server's working directory, if known; relative paths without it are uncertain.
    pub cwd: Option<&'a str>,
    /// The server's home directory, if known; a leading `~` without it is uncertain.
    pub home: Option<&'a str>,
    /// Symlink resolver, when the server shares the gateway's filesystem.
    pub resolver: Option<&'a dyn PathResolver>,
}

/// Every plausible reading of `raw`, deduplicated, the `Lexical` one first; or why none can be
/// given with certainty.
pub fn path_readings(raw: &str, ctx: &PathContext<'_>) -> Result<Vec<PathReading>, Uncertain> {
    let _ = (raw, ctx);
    Err(Uncertain::new("path normalizer not implemented"))
}

/// Lexically normalize an absolute `/`-separated path (used for policy-side `under` bases too).
pub fn normalize_absolute(path: &str) -> Option<String> {
    let _ = path;
    None
}

/// Whether `path` equals `base` or lies below it, by whole components (`/ws-evil` is not under
/// `/ws`). Both must already be normalized absolute paths.
pub fn is_under(path: &str, base: &str) -> bool {
    let _ = (path, base);
    false
}
