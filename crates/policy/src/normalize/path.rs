//! Path readings: every absolute path a server might act on for one argument string.
//!
//! A filesystem server does not open the JSON string it receives: it resolves `..`, may
//! percent-decode it, may treat `\` as a separator, may fold Unicode, may trim trailing dots and
//! spaces (Windows), may expand `~`, and the kernel follows symlinks. Each of these has been used
//! to walk out of an allowed directory (`/ws/%2e%2e/etc`, `/ws\..\etc`, `/ws/．．/etc`,
//! `/ws/link/x` with `link -> /etc`). So we yield the closure of all these readings and let the
//! evaluator demand that a condition hold for every one of them (DESIGN §3.4); a spelling whose
//! meaning we cannot know at all (a relative path without a working directory, a Windows device
//! name, a control character) is [`Uncertain`].

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use unicode_normalization::UnicodeNormalization;

use super::Uncertain;

/// Longest path accepted, in bytes: Linux `PATH_MAX`. A longer string fails on the server
/// (or is truncated by a careless one), so we cannot say what it names.
pub const MAX_PATH_BYTES: usize = 4096;

/// Longest path component accepted, in bytes: `NAME_MAX` on Linux and most filesystems.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Most readings one path may have. A spelling that combines so many encodings that the closure
/// grows beyond this is built to confuse, so it is uncertain rather than evaluated partially.
pub const MAX_READINGS: usize = 32;

/// Most intermediate spellings explored while building the closure of transformations.
const MAX_SPELLINGS: usize = 64;

/// Rounds of percent-decoding tried: catches double (`%252e`) and triple encoding. A value still
/// encoded after that is built to evade, so it is uncertain.
pub const MAX_PERCENT_ROUNDS: u8 = 3;

/// Symlinks followed by [`MapResolver`] before it calls the path a loop (Linux `MAXSYMLINKS`).
pub const MAX_SYMLINK_HOPS: usize = 40;

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
    /// Resolve every symlink in `absolute`, as the kernel would: `.` and `..` may still be in it,
    /// and a `..` after a symlink climbs from the link's target, not from the link. A path that
    /// does not exist resolves its longest existing prefix and appends the rest (a new file under a linked
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

/// One spelling in the closure of string transformations, before it is made absolute.
struct Spelling {
    text: String,
    kind: PathReadingKind,
    percent_rounds: u8,
}

/// Every plausible reading of `raw`, deduplicated, the `Lexical` one first; or why none can be
/// given with certainty.
///
/// The readings are the closure of `raw` under {`\` as separator, one round of percent-decoding
/// (at most [`MAX_PERCENT_ROUNDS`]), NFC, NFKC, Windows trimming of trailing dots and spaces},
/// each made absolute (joined to `ctx.cwd`, or with `~` expanded to `ctx.home` as an extra
/// reading) and lexically normalized, plus, when `ctx.resolver` is set, each reading with its
/// symlinks resolved. Case is deliberately not folded: the evaluator compares case-insensitively.
pub fn path_readings(raw: &str, ctx: &PathContext<'_>) -> Result<Vec<PathReading>, Uncertain> {
    if raw.is_empty() {
        return Err(Uncertain::new("empty path"));
    }
    // Checked on the raw string first so that the closure never works on a huge input.
    check_spelling(raw, raw)?;

    // The common case: an absolute spelling that no transformation changes has one reading,
    // its lexical form — what the general code below yields for it, without its allocations.
    if raw.starts_with('/') && ctx.resolver.is_none() && is_fixed_point(raw) {
        let path = lexical(raw);
        check_lengths(&path, raw)?;
        return Ok(vec![PathReading {
            path,
            kind: PathReadingKind::Lexical,
        }]);
    }

    let spellings = closure(raw)?;

    // Deduplicated by a linear scan: there are few readings (at most a few dozen before the
    // `MAX_READINGS` check), and usually one, so a hash set would cost more than it saves.
    let mut readings: Vec<PathReading> = Vec::new();
    let push = |reading: PathReading, readings: &mut Vec<PathReading>| {
        if !readings.iter().any(|r| r.path == reading.path) {
            readings.push(reading);
        }
    };
    // The absolute spellings with `.` and `..` still in place: the kernel resolves `..` *after*
    // following the symlink before it (`/ws/link/../x` with `link -> /out/dir` opens `/out/x`),
    // so symlinks are resolved both on these and on the lexical readings (a server that
    // normalizes the string first opens the latter).
    let mut unnormalized: Vec<String> = Vec::new();
    for spelling in &spellings {
        for (absolute, expanded) in absolutes(&spelling.text, raw, ctx)? {
            let path = lexical(&absolute);
            check_lengths(&path, raw)?;
            let kind = if expanded {
                PathReadingKind::TildeExpanded
            } else {
                spelling.kind
            };
            push(PathReading { path, kind }, &mut readings);
            if !unnormalized.contains(&absolute) {
                unnormalized.push(absolute);
            }
        }
    }

    if let Some(resolver) = ctx.resolver {
        let to_resolve: Vec<String> = readings
            .iter()
            .map(|reading| reading.path.clone())
            .chain(
                unnormalized
                    .into_iter()
                    .filter(|absolute| !readings.iter().any(|reading| reading.path == *absolute)),
            )
            .collect();
        for path in &to_resolve {
            match resolver.resolve(path) {
                Resolution::Resolved(target) => {
                    let path = normalize_absolute(&target).ok_or_else(|| {
                        Uncertain::new(format!(
                            "symlinks in `{}` resolve to `{}`, which is not an absolute path",
                            shown(path),
                            shown(&target)
                        ))
                    })?;
                    check_lengths(&path, raw)?;
                    let kind = PathReadingKind::Resolved;
                    push(PathReading { path, kind }, &mut readings);
                }
                Resolution::Uncertain(why) => {
                    return Err(Uncertain::new(format!(
                        "cannot resolve symlinks in `{}`: {why}",
                        shown(path)
                    )));
                }
            }
        }
    }

    if readings.len() > MAX_READINGS {
        return Err(too_many_readings(raw));
    }
    Ok(readings)
}

fn too_many_readings(raw: &str) -> Uncertain {
    Uncertain::new(format!(
        "path `{}` has more than {MAX_READINGS} plausible readings",
        shown(raw)
    ))
}

/// The closure of `raw` under the string transformations, raw first, breadth-first so that the
/// fewest transformations come first. Every spelling is checked, because decoding or folding can
/// reveal what the raw string hid (`%00`, `%E2%80%8B`, fullwidth `ＣＯＮ`).
fn closure(raw: &str) -> Result<Vec<Spelling>, Uncertain> {
    // The common case: a spelling that no transformation changes (no `\\`, no `%`, ASCII so
    // NFC and NFKC are the identity, nothing for Windows to trim) is its own closure. This is
    // exactly what the loop below would find, without building and discarding candidates.
    if is_fixed_point(raw) {
        return Ok(vec![Spelling {
            text: raw.to_owned(),
            kind: PathReadingKind::Lexical,
            percent_rounds: 0,
        }]);
    }
    closure_search(raw)
}

/// Whether no transformation of the closure changes `s`.
fn is_fixed_point(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii() && b != b'\\' && b != b'%') && !needs_windows_trim(s)
}

/// The closure, by breadth-first search.
fn closure_search(raw: &str) -> Result<Vec<Spelling>, Uncertain> {
    let mut out: Vec<Spelling> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<Spelling> = VecDeque::new();
    seen.insert(raw.to_owned());
    queue.push_back(Spelling {
        text: raw.to_owned(),
        kind: PathReadingKind::Lexical,
        percent_rounds: 0,
    });
    while let Some(spelling) = queue.pop_front() {
        let mut next: Vec<Spelling> = Vec::new();
        if spelling.text.contains('\\') {
            next.push(Spelling {
                text: spelling.text.replace('\\', "/"),
                kind: PathReadingKind::Backslash,
                percent_rounds: spelling.percent_rounds,
            });
        }
        if let Some(decoded) = percent_decode_once(&spelling.text, raw)? {
            if spelling.percent_rounds >= MAX_PERCENT_ROUNDS {
                return Err(Uncertain::new(format!(
                    "path `{}` is percent-encoded more than {MAX_PERCENT_ROUNDS} times",
                    shown(raw)
                )));
            }
            next.push(Spelling {
                text: decoded,
                kind: PathReadingKind::PercentDecoded,
                percent_rounds: spelling.percent_rounds.saturating_add(1),
            });
        }
        // NFC and NFKC leave ASCII unchanged: skip them (the common case) rather than build two
        // copies that the `seen` set would discard anyway.
        if !spelling.text.is_ascii() {
            let nfc: String = spelling.text.nfc().collect();
            next.push(Spelling {
                text: nfc,
                kind: PathReadingKind::Nfc,
                percent_rounds: spelling.percent_rounds,
            });
            let nfkc: String = spelling.text.nfkc().collect();
            next.push(Spelling {
                text: nfkc,
                kind: PathReadingKind::Nfkc,
                percent_rounds: spelling.percent_rounds,
            });
        }
        if needs_windows_trim(&spelling.text) {
            next.push(Spelling {
                text: windows_trim(&spelling.text),
                kind: PathReadingKind::WindowsTrim,
                percent_rounds: spelling.percent_rounds,
            });
        }
        out.push(spelling);
        for candidate in next {
            if seen.contains(&candidate.text) {
                continue;
            }
            check_spelling(&candidate.text, raw)?;
            seen.insert(candidate.text.clone());
            if seen.len() > MAX_SPELLINGS {
                return Err(too_many_readings(raw));
            }
            queue.push_back(candidate);
        }
    }
    Ok(out)
}

/// One round of percent-decoding, `None` when `s` holds no `%XX` escape. A `%` not followed by
/// two hex digits stays literal, as most decoders leave it.
fn percent_decode_once(s: &str, raw: &str) -> Result<Option<String>, Uncertain> {
    if !s.contains('%') {
        return Ok(None);
    }
    let bytes = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i.saturating_add(1)).copied().and_then(hex_value);
            let lo = bytes.get(i.saturating_add(2)).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi.wrapping_mul(16).wrapping_add(lo));
                changed = true;
                i = i.saturating_add(3);
                continue;
            }
        }
        out.push(b);
        i = i.saturating_add(1);
    }
    if !changed {
        return Ok(None);
    }
    // Overlong UTF-8 (`%c0%ae` for `.`) was decoded to `.` by old servers and rejected by modern
    // ones: we cannot know which, so the value is uncertain.
    String::from_utf8(out).map(Some).map_err(|_| {
        Uncertain::new(format!(
            "path `{}` percent-decodes to bytes that are not valid utf-8 (overlong or partial encoding)",
            shown(raw)
        ))
    })
}

pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether [`windows_trim`] would change `s`: some component ends in a space, or in a dot
/// without being `.` or `..` (each possibly followed by spaces).
fn needs_windows_trim(s: &str) -> bool {
    // On bytes: `/`, `.` and ` ` are ASCII, so they never occur inside a multi-byte character.
    s.as_bytes().split(|&b| b == b'/').any(|component| {
        let spaceless = component
            .iter()
            .rposition(|&b| b != b' ')
            .and_then(|last| component.get(..=last))
            .unwrap_or_default();
        if spaceless == b"." || spaceless == b".." {
            spaceless.len() != component.len()
        } else {
            matches!(component.last(), Some(b' ' | b'.'))
        }
    })
}

/// Windows strips trailing dots and spaces from every component, so `.env.` and `.env ` open
/// `.env`; `.. ` is `..`, and a component of only dots such as `...` vanishes.
fn windows_trim(s: &str) -> String {
    s.split('/')
        .map(|component| {
            let spaceless = component.trim_end_matches(' ');
            if spaceless == "." || spaceless == ".." {
                spaceless
            } else {
                component.trim_end_matches([' ', '.'])
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Reject what no reading can make certain. Applied to the raw string and to every spelling.
fn check_spelling(s: &str, raw: &str) -> Result<(), Uncertain> {
    // ASCII (the common case) has no invisible character, and its control characters are the
    // C0 range and DEL: one byte scan instead of two passes over chars.
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_control()) {
        check_windows(s, raw)?;
        return check_lengths(s, raw);
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        let what = if c == '\0' { "a nul" } else { "a control" };
        let decoded = if raw.contains(c) {
            "contains"
        } else {
            "decodes to"
        };
        return Err(Uncertain::new(format!(
            "path `{}` {decoded} {what} character (U+{:04X})",
            shown(raw),
            u32::from(c)
        )));
    }
    if let Some(c) = s.chars().find(|&c| is_invisible(c)) {
        return Err(Uncertain::new(format!(
            "path `{}` contains an invisible or bidirectional-control character (U+{:04X}), so what is shown is not what the server reads",
            shown(raw),
            u32::from(c)
        )));
    }
    check_windows(s, raw)?;
    check_lengths(s, raw)
}

/// Invisible, zero-width, bidirectional-control and other default-ignorable characters: a human
/// reviewing the path sees something else than the server opens.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0xE0000..=0xE0FFF
    )
}

/// Windows drive, UNC, device-namespace paths, NTFS streams and DOS device names: what a Windows
/// server does with them (another volume, a network share, the console) is unknowable here.
fn check_windows(s: &str, raw: &str) -> Result<(), Uncertain> {
    let fail = |what: &str| {
        Err(Uncertain::new(format!(
            "path `{}` {what}, which a windows server reads in ways that cannot be known here",
            shown(raw)
        )))
    };
    if s.starts_with("\\\\") || s.starts_with("//?/") || s.starts_with("//./") {
        return fail("is a windows unc or device path");
    }
    if s.starts_with("\\??\\") {
        return fail("is a windows nt object path");
    }
    let mut chars = s.chars();
    if matches!((chars.next(), chars.next()), (Some(letter), Some(':')) if letter.is_ascii_alphabetic())
    {
        return fail("starts with a windows drive letter");
    }
    if s.contains(':') {
        return fail("contains `:` (an ntfs alternate data stream or drive)");
    }
    // Components between `/` and `\\` separators, found on bytes (both are ASCII, so every
    // boundary is a character boundary) rather than by decoding characters. Only a component
    // that starts with a device name's first letter is looked at further.
    let bytes = s.as_bytes();
    let is_separator = |b: u8| b == b'/' || b == b'\\';
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes
            .iter()
            .skip(start)
            .position(|&b| is_separator(b))
            .map_or(bytes.len(), |n| start.saturating_add(n));
        if bytes.get(start).is_some_and(|&b| starts_device_name(b))
            && let Some(device) = s.get(start..end).and_then(dos_device)
        {
            return fail(&format!("names the dos device `{device}`"));
        }
        start = end.saturating_add(1);
    }
    Ok(())
}

/// Whether a component starting with `b` may name a DOS device: every device name starts
/// with one of these letters, so most components are ruled out by their first byte.
fn starts_device_name(b: u8) -> bool {
    matches!(b.to_ascii_uppercase(), b'C' | b'P' | b'A' | b'N' | b'L')
}

/// The DOS device a component names, if any: `CON`, `nul.txt`, `COM1 .log` all open a device on
/// Windows, whatever the directory.
fn dos_device(component: &str) -> Option<String> {
    const DEVICES: &[&str] = &["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"];
    if !component
        .as_bytes()
        .first()
        .is_some_and(|&b| starts_device_name(b))
    {
        return None;
    }
    let stem = component.split('.').next().unwrap_or(component);
    let stem = stem.trim_end_matches(' ');
    // Compared ignoring ASCII case rather than upper-cased, so that the common case (no
    // device) allocates nothing; only a hit builds the upper-case name for the message.
    let numbered = ["COM", "LPT"].iter().any(|prefix| {
        stem.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            && stem.get(prefix.len()..).is_some_and(|n| {
                (n.len() == 1 && n.bytes().all(|b| b.is_ascii_digit()))
                    || ["¹", "²", "³"].contains(&n)
            })
    });
    (numbered || DEVICES.iter().any(|d| stem.eq_ignore_ascii_case(d)))
        .then(|| stem.to_ascii_uppercase())
}

fn check_lengths(s: &str, raw: &str) -> Result<(), Uncertain> {
    if s.len() > MAX_PATH_BYTES {
        return Err(Uncertain::new(format!(
            "path `{}` is longer than {MAX_PATH_BYTES} bytes",
            shown(raw)
        )));
    }
    if s.as_bytes()
        .split(|&b| b == b'/')
        .any(|c| c.len() > MAX_COMPONENT_BYTES)
    {
        return Err(Uncertain::new(format!(
            "path `{}` has a component longer than {MAX_COMPONENT_BYTES} bytes",
            shown(raw)
        )));
    }
    Ok(())
}

/// The absolute spellings of one spelling, each with whether `~` was expanded.
fn absolutes(s: &str, raw: &str, ctx: &PathContext<'_>) -> Result<Vec<(String, bool)>, Uncertain> {
    if s.starts_with('/') {
        return Ok(vec![(s.to_owned(), false)]);
    }
    if let Some(rest) = s.strip_prefix('~') {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err(Uncertain::new(format!(
                "path `{}` starts with `~user`, another user's home directory, which is unknown",
                shown(raw)
            )));
        }
        let home = ctx.home.ok_or_else(|| {
            Uncertain::new(format!(
                "path `{}` starts with `~` and the server may expand `~` to a home directory that is unknown",
                shown(raw)
            ))
        })?;
        let home = base_dir(home, "home")?;
        // Many servers (Node's `fs`, Python's `open`) do not expand `~`: then it is a directory
        // named `~` under the working directory, which must be known too.
        let literal = join_cwd(s, raw, ctx)?;
        return Ok(vec![(literal, false), (format!("{home}/{rest}"), true)]);
    }
    Ok(vec![(join_cwd(s, raw, ctx)?, false)])
}

fn join_cwd(s: &str, raw: &str, ctx: &PathContext<'_>) -> Result<String, Uncertain> {
    let cwd = ctx.cwd.ok_or_else(|| {
        Uncertain::new(format!(
            "relative path `{}` and the server's working directory is unknown",
            shown(raw)
        ))
    })?;
    Ok(format!("{}/{s}", base_dir(cwd, "working directory")?))
}

fn base_dir(dir: &str, what: &str) -> Result<String, Uncertain> {
    normalize_absolute(dir).ok_or_else(|| {
        Uncertain::new(format!(
            "the server's {what} `{}` is not an absolute path",
            shown(dir)
        ))
    })
}

/// Resolve `.`, `..` (never above `/`), `//` and trailing `/` in an absolute path.
fn lexical(absolute: &str) -> String {
    // Already normal (the common case): absolute, no empty, `.` or `..` component.
    if let Some(rest) = absolute.strip_prefix('/')
        && !rest.is_empty()
        && rest
            .as_bytes()
            .split(|&b| b == b'/')
            .all(|c| !matches!(c, b"" | b"." | b".."))
    {
        return absolute.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in absolute.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Lexically normalize an absolute `/`-separated path (used for policy-side `under` bases too).
/// `None` when the path is not absolute or contains a control character.
pub fn normalize_absolute(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.chars().any(char::is_control) {
        return None;
    }
    Some(lexical(path))
}

/// Whether `path` equals `base` or lies below it, by whole components (`/ws-evil` is not under
/// `/ws`). Both must already be normalized absolute paths.
pub fn is_under(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    match path.strip_prefix(base) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A path as shown in messages: escaped (control characters visible) and cut short, so a
/// 5,000-byte argument does not flood the decision trace.
pub(crate) fn shown(s: &str) -> String {
    const MAX_SHOWN_CHARS: usize = 80;
    let escaped: String = s.escape_debug().collect();
    if escaped.chars().count() > MAX_SHOWN_CHARS {
        let cut: String = escaped.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

/// An in-memory filesystem view for tests and `explain`: symlinks and directories, no I/O.
///
/// Resolution walks the path component by component like the kernel: a component that is a
/// symlink is replaced by its target (absolute targets restart at `/`, relative ones are read
/// from the link's directory), up to [`MAX_SYMLINK_HOPS`] links; anything not recorded is an
/// ordinary existing-or-new entry, so a dangling link resolves to its target and a new file
/// under a linked directory resolves below the link's target.
#[derive(Clone, Debug, Default)]
pub struct MapResolver {
    symlinks: BTreeMap<String, String>,
    dirs: BTreeSet<String>,
}

impl MapResolver {
    /// An empty view: no symlinks, only `/`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `link` (absolute; a relative one is taken from `/`) is a symlink to `target`,
    /// which is kept as written: relative targets are read from the link's directory.
    pub fn add_symlink(&mut self, link: &str, target: &str) -> &mut Self {
        self.symlinks
            .insert(lexical(&format!("/{link}")), target.to_owned());
        self
    }

    /// Record that `path` (absolute; a relative one is taken from `/`) is a directory. The view
    /// does not need it to resolve, but `explain` lists it.
    pub fn add_dir(&mut self, path: &str) -> &mut Self {
        self.dirs.insert(lexical(&format!("/{path}")));
        self
    }

    /// Whether `path` was recorded as a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.dirs.contains(&lexical(&format!("/{path}")))
    }
}

impl PathResolver for MapResolver {
    fn resolve(&self, absolute: &str) -> Resolution {
        let mut pending: VecDeque<String> = absolute.split('/').map(str::to_owned).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0usize;
        while let Some(component) = pending.pop_front() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = format!("/{}", {
                let mut parts = resolved.clone();
                parts.push(component.clone());
                parts.join("/")
            });
            match self.symlinks.get(&candidate) {
                Some(target) => {
                    hops = hops.saturating_add(1);
                    if hops > MAX_SYMLINK_HOPS {
                        return Resolution::Uncertain(format!(
                            "more than {MAX_SYMLINK_HOPS} symlinks (a loop) at `{}`",
                            shown(&candidate)
                        ));
                    }
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    for part in target.split('/').rev() {
                        pending.push_front(part.to_owned());
                    }
                }
                None => resolved.push(component),
            }
        }
        Resolution::Resolved(format!("/{}", resolved.join("/")))
    }
}

#[cfg(test)]
mod tests;
