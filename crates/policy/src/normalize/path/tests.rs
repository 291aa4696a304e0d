use super::*;
use PathReadingKind::{
    Backslash, Lexical, Nfc, Nfkc, PercentDecoded, Resolved, TildeExpanded, WindowsTrim,
};

fn ws() -> PathContext<'static> {
    PathContext {
        cwd: Some("/ws"),
        home: None,
        resolver: None,
    }
}

fn readings(raw: &str, ctx: &PathContext<'_>) -> Vec<(String, PathReadingKind)> {
    match path_readings(raw, ctx) {
        Ok(readings) => readings.into_iter().map(|r| (r.path, r.kind)).collect(),
        Err(e) => panic!("`{raw}` was uncertain: {e}"),
    }
}

fn r(path: &str, kind: PathReadingKind) -> (String, PathReadingKind) {
    (path.to_owned(), kind)
}

fn why(raw: &str, ctx: &PathContext<'_>) -> String {
    match path_readings(raw, ctx) {
        Ok(readings) => panic!("`{raw}` was certain: {readings:?}"),
        Err(e) => e.why,
    }
}

fn assert_uncertain(raw: &str, ctx: &PathContext<'_>, needle: &str) {
    let why = why(raw, ctx);
    assert!(why.contains(needle), "`{raw}`: `{why}` lacks `{needle}`");
}

// --- lexical -------------------------------------------------------------------------------

#[test]
fn dotdot_is_resolved_lexically() {
    assert_eq!(
        readings("/workspace/../etc/passwd", &ws()),
        [r("/etc/passwd", Lexical)]
    );
}

#[test]
fn dotdot_never_climbs_above_root() {
    assert_eq!(readings("/../../etc", &ws()), [r("/etc", Lexical)]);
    assert_eq!(readings("/..", &ws()), [r("/", Lexical)]);
    assert_eq!(readings("/", &ws()), [r("/", Lexical)]);
}

#[test]
fn trailing_slash_and_dot_are_dropped() {
    assert_eq!(
        readings("/workspace/.env/", &ws()),
        [r("/workspace/.env", Lexical)]
    );
    assert_eq!(readings("/ws/./a/.", &ws()), [r("/ws/a", Lexical)]);
}

#[test]
fn double_slashes_collapse() {
    assert_eq!(
        readings("//etc//passwd", &ws()),
        [r("/etc/passwd", Lexical)]
    );
}

#[test]
fn relative_path_joins_cwd() {
    assert_eq!(
        readings("src/main.rs", &ws()),
        [r("/ws/src/main.rs", Lexical)]
    );
    assert_eq!(
        readings("../etc/passwd", &ws()),
        [r("/etc/passwd", Lexical)]
    );
    assert_eq!(readings(".", &ws()), [r("/ws", Lexical)]);
}

#[test]
fn relative_path_without_cwd_is_uncertain() {
    assert_eq!(
        why("src/main.rs", &PathContext::default()),
        "relative path `src/main.rs` and the server's working directory is unknown"
    );
}

#[test]
fn relative_cwd_is_uncertain() {
    let ctx = PathContext {
        cwd: Some("ws"),
        ..PathContext::default()
    };
    assert_uncertain("a", &ctx, "working directory `ws` is not an absolute path");
}

#[test]
fn empty_path_is_uncertain() {
    assert_eq!(why("", &ws()), "empty path");
}

// --- percent-decoding --------------------------------------------------------------------

#[test]
fn encoded_dotdot_gives_an_escaping_reading() {
    assert_eq!(
        readings("/ws/%2e%2e/etc/passwd", &ws()),
        [
            r("/ws/%2e%2e/etc/passwd", Lexical),
            r("/etc/passwd", PercentDecoded)
        ]
    );
}

#[test]
fn double_encoding_is_decoded_in_rounds() {
    assert_eq!(
        readings("/ws/%252e%252e/etc", &ws()),
        [
            r("/ws/%252e%252e/etc", Lexical),
            r("/ws/%2e%2e/etc", PercentDecoded),
            r("/etc", PercentDecoded)
        ]
    );
}

#[test]
fn triple_encoding_is_decoded_quadruple_is_uncertain() {
    let got = readings("/ws/%25252e%25252e/etc", &ws());
    assert_eq!(got.last(), Some(&r("/etc", PercentDecoded)));
    assert_uncertain(
        "/ws/%2525252e%2525252e/etc",
        &ws(),
        "percent-encoded more than 3 times",
    );
}

#[test]
fn encoded_slash_splits_components() {
    assert_eq!(
        readings("/ws/..%2fetc", &ws()),
        [r("/ws/..%2fetc", Lexical), r("/etc", PercentDecoded)]
    );
}

#[test]
fn stray_percent_stays_literal() {
    assert_eq!(readings("/ws/100%", &ws()), [r("/ws/100%", Lexical)]);
    assert_eq!(readings("/ws/%zz", &ws()), [r("/ws/%zz", Lexical)]);
}

#[test]
fn overlong_utf8_is_uncertain() {
    assert_uncertain(
        "/ws/%c0%ae%c0%ae/etc",
        &ws(),
        "percent-decodes to bytes that are not valid utf-8",
    );
}

#[test]
fn encoded_nul_is_uncertain() {
    assert_eq!(
        why("/ws/a.txt%00.png", &ws()),
        "path `/ws/a.txt%00.png` decodes to a nul character (U+0000)"
    );
}

#[test]
fn raw_nul_and_controls_are_uncertain() {
    assert_eq!(
        why("/ws/a\u{0}b", &ws()),
        "path `/ws/a\\0b` contains a nul character (U+0000)"
    );
    assert_uncertain("/ws/a\nb", &ws(), "contains a control character (U+000A)");
    assert_uncertain("/ws/a\u{7f}", &ws(), "control character (U+007F)");
    assert_uncertain("/ws/a\u{85}", &ws(), "control character (U+0085)");
    assert_uncertain("/ws/a%0a", &ws(), "decodes to a control character (U+000A)");
}

// --- unicode ------------------------------------------------------------------------------

#[test]
fn fullwidth_dots_and_slash_fold_under_nfkc() {
    assert_eq!(
        readings("/ws/．．／etc", &ws()),
        [r("/ws/．．／etc", Lexical), r("/etc", Nfkc)]
    );
}

#[test]
fn nfd_gets_an_nfc_reading() {
    assert_eq!(
        readings("/ws/cafe\u{301}", &ws()),
        [r("/ws/cafe\u{301}", Lexical), r("/ws/caf\u{e9}", Nfc)]
    );
    // Already NFC: one reading.
    assert_eq!(
        readings("/ws/caf\u{e9}", &ws()),
        [r("/ws/caf\u{e9}", Lexical)]
    );
}

#[test]
fn nfkc_composes_with_percent_decoding() {
    assert_eq!(
        readings("/ws/%EF%BC%8E%EF%BC%8E/etc", &ws()),
        [
            r("/ws/%EF%BC%8E%EF%BC%8E/etc", Lexical),
            r("/ws/．．/etc", PercentDecoded),
            r("/etc", Nfkc)
        ]
    );
}

#[test]
fn invisible_characters_are_uncertain() {
    assert_uncertain(
        "/ws/a\u{200B}b",
        &ws(),
        "invisible or bidirectional-control character (U+200B)",
    );
    assert_uncertain("/ws/\u{202E}txt.exe", &ws(), "(U+202E)");
    assert_uncertain("/ws/\u{FEFF}a", &ws(), "(U+FEFF)");
    assert_uncertain("/ws/a%E2%80%8Bb", &ws(), "(U+200B)");
}

#[test]
fn case_is_not_a_reading() {
    assert_eq!(readings("/WS/Secret", &ws()), [r("/WS/Secret", Lexical)]);
}

// --- backslash and windows -------------------------------------------------------------

#[test]
fn backslash_separators_give_a_reading() {
    assert_eq!(
        readings("/ws\\..\\..\\etc\\passwd", &ws()),
        [
            r("/ws\\..\\..\\etc\\passwd", Lexical),
            r("/etc/passwd", Backslash)
        ]
    );
}

#[test]
fn backslash_composes_with_percent_decoding() {
    assert_eq!(
        readings("/ws\\%2e%2e\\etc", &ws()),
        [
            r("/ws\\%2e%2e\\etc", Lexical),
            r("/ws/%2e%2e/etc", Backslash),
            r("/ws\\..\\etc", PercentDecoded),
            r("/etc", PercentDecoded)
        ]
    );
}

#[test]
fn trailing_dots_and_spaces_are_trimmed() {
    assert_eq!(
        readings("/ws/.env.", &ws()),
        [r("/ws/.env.", Lexical), r("/ws/.env", WindowsTrim)]
    );
    assert_eq!(
        readings("/ws/.env ", &ws()),
        [r("/ws/.env ", Lexical), r("/ws/.env", WindowsTrim)]
    );
    assert_eq!(
        readings("/ws/.env. . ", &ws()),
        [r("/ws/.env. . ", Lexical), r("/ws/.env", WindowsTrim)]
    );
}

#[test]
fn dot_only_components_are_kept_and_trimmed() {
    assert_eq!(
        readings("/ws/.../x", &ws()),
        [r("/ws/.../x", Lexical), r("/ws/x", WindowsTrim)]
    );
    assert_eq!(
        readings("/ws/.. /etc", &ws()),
        [r("/ws/.. /etc", Lexical), r("/etc", WindowsTrim)]
    );
}

#[test]
fn drive_letters_are_uncertain() {
    assert_uncertain(
        "C:\\Windows\\win.ini",
        &ws(),
        "starts with a windows drive letter",
    );
    assert_uncertain("c:/x", &ws(), "starts with a windows drive letter");
}

#[test]
fn unc_and_device_paths_are_uncertain() {
    assert_uncertain("\\\\server\\share\\x", &ws(), "windows unc or device path");
    assert_uncertain("\\\\?\\C:\\x", &ws(), "windows unc or device path");
    assert_uncertain("//?/C:/x", &ws(), "windows unc or device path");
    assert_uncertain("\\??\\C:\\x", &ws(), "windows nt object path");
}

#[test]
fn alternate_data_streams_are_uncertain() {
    assert_uncertain(
        "/ws/a.txt::$DATA",
        &ws(),
        "contains `:` (an ntfs alternate data stream or drive)",
    );
    assert_uncertain("/ws/a.txt%3a%3a$DATA", &ws(), "contains `:`");
}

#[test]
fn dos_devices_are_uncertain() {
    assert_uncertain("/ws/CON", &ws(), "names the dos device `CON`");
    assert_uncertain("/ws/nul.txt", &ws(), "names the dos device `NUL`");
    assert_uncertain("/ws/Com1.log", &ws(), "names the dos device `COM1`");
    assert_uncertain("/ws/lpt9", &ws(), "names the dos device `LPT9`");
    assert_uncertain("/ws/aux .c", &ws(), "names the dos device `AUX`");
    assert_uncertain("/ws/ＣＯＮ", &ws(), "names the dos device `CON`");
    assert_uncertain("/ws/a\\prn", &ws(), "names the dos device `PRN`");
    // Names that merely start like a device are ordinary files.
    assert_eq!(
        readings("/ws/console.log", &ws()),
        [r("/ws/console.log", Lexical)]
    );
    assert_eq!(readings("/ws/com10", &ws()), [r("/ws/com10", Lexical)]);
}

// --- tilde ----------------------------------------------------------------------------------

#[test]
fn tilde_with_home_reads_both_ways() {
    let ctx = PathContext {
        cwd: Some("/ws"),
        home: Some("/home/u"),
        resolver: None,
    };
    assert_eq!(
        readings("~/.ssh/id_rsa", &ctx),
        [
            r("/ws/~/.ssh/id_rsa", Lexical),
            r("/home/u/.ssh/id_rsa", TildeExpanded)
        ]
    );
    assert_eq!(
        readings("~", &ctx),
        [r("/ws/~", Lexical), r("/home/u", TildeExpanded)]
    );
}

#[test]
fn tilde_without_home_is_uncertain() {
    assert_eq!(
        why("~/.ssh/id_rsa", &ws()),
        "path `~/.ssh/id_rsa` starts with `~` and the server may expand `~` to a home directory that is unknown"
    );
}

#[test]
fn tilde_without_cwd_is_uncertain() {
    let ctx = PathContext {
        home: Some("/home/u"),
        ..PathContext::default()
    };
    assert_uncertain("~/x", &ctx, "working directory is unknown");
}

#[test]
fn tilde_user_is_uncertain() {
    let ctx = PathContext {
        cwd: Some("/ws"),
        home: Some("/home/u"),
        resolver: None,
    };
    assert_uncertain("~root/.ssh", &ctx, "starts with `~user`");
    assert_uncertain("~root", &ctx, "another user's home directory");
}

#[test]
fn tilde_inside_a_path_is_literal() {
    assert_eq!(readings("/ws/~/x", &ws()), [r("/ws/~/x", Lexical)]);
}

// --- limits ---------------------------------------------------------------------------------

#[test]
fn path_at_the_limit_is_accepted_and_beyond_is_uncertain() {
    let component = "a".repeat(255);
    let mut at_limit = String::new();
    while at_limit.len() + 256 <= MAX_PATH_BYTES {
        at_limit.push('/');
        at_limit.push_str(&component);
    }
    let pad = MAX_PATH_BYTES - at_limit.len();
    if pad > 0 {
        at_limit.push('/');
        at_limit.push_str(&"b".repeat(pad - 1));
    }
    assert_eq!(at_limit.len(), MAX_PATH_BYTES);
    assert_eq!(readings(&at_limit, &ws()), [r(&at_limit, Lexical)]);
    assert_uncertain(&format!("{at_limit}c"), &ws(), "longer than 4096 bytes");
    assert_uncertain(&"/a".repeat(2500), &ws(), "longer than 4096 bytes");
}

#[test]
fn relative_path_too_long_after_joining_cwd_is_uncertain() {
    let ctx = PathContext {
        cwd: Some("/workspace"),
        ..PathContext::default()
    };
    let raw = "a/".repeat(2047);
    assert_eq!(raw.len(), 4094);
    assert_uncertain(&raw, &ctx, "longer than 4096 bytes");
}

#[test]
fn long_component_is_uncertain() {
    let ok = format!("/ws/{}", "a".repeat(255));
    assert_eq!(readings(&ok, &ws()), [r(&ok, Lexical)]);
    assert_eq!(
        why(&format!("/ws/{}", "a".repeat(300)), &ws())
            .rsplit("` ")
            .next(),
        Some("has a component longer than 255 bytes")
    );
}

#[test]
fn long_component_in_a_decoded_reading_is_uncertain() {
    // 100 `%41` are 300 bytes raw but 100 decoded: fine. The reverse: an encoded slash hides
    // nothing here, but a component that only exceeds the limit raw is still rejected.
    let raw = format!("/ws/{}", "%41".repeat(100));
    assert_uncertain(&raw, &ws(), "component longer than 255 bytes");
}

#[test]
fn too_many_readings_is_uncertain() {
    let raw = "/w\\%25252e. /ｗ\\%25252e. /e\u{301}\\%2e.";
    assert_uncertain(raw, &ws(), "plausible readings");
}

#[test]
fn long_input_is_shown_shortened() {
    let why = why(&format!("/{}", "a".repeat(5000)), &ws());
    assert!(why.len() < 200, "{why}");
    assert!(why.contains('…'));
}

// --- normalize_absolute and is_under -----------------------------------------------------

#[test]
fn normalize_absolute_cleans_policy_bases() {
    assert_eq!(
        normalize_absolute("/workspace/"),
        Some("/workspace".to_owned())
    );
    assert_eq!(
        normalize_absolute("/workspace/./src"),
        Some("/workspace/src".to_owned())
    );
    assert_eq!(normalize_absolute("/a/../../b"), Some("/b".to_owned()));
    assert_eq!(normalize_absolute("/"), Some("/".to_owned()));
    assert_eq!(normalize_absolute("workspace"), None);
    assert_eq!(normalize_absolute(""), None);
    assert_eq!(normalize_absolute("/a\u{0}"), None);
}

#[test]
fn is_under_compares_whole_components() {
    assert!(is_under("/ws/a", "/ws"));
    assert!(is_under("/ws", "/ws"));
    assert!(is_under("/ws/a/b", "/ws/"));
    assert!(!is_under("/ws-evil/x", "/ws"));
    assert!(!is_under("/workspace-evil/x", "/workspace"));
    assert!(!is_under("/w", "/ws"));
    assert!(!is_under("/", "/ws"));
    assert!(is_under("/anything", "/"));
    assert!(is_under("/", "/"));
}

#[test]
fn every_reading_of_an_escape_is_checked_by_is_under() {
    let all = readings("/ws/%2e%2e/etc/passwd", &ws());
    assert!(all.iter().any(|(p, _)| !is_under(p, "/ws")));
}

// --- symlinks -----------------------------------------------------------------------------

fn fs() -> MapResolver {
    let mut fs = MapResolver::new();
    fs.add_dir("/ws")
        .add_dir("/etc")
        .add_symlink("/ws/link", "/etc")
        .add_symlink("/ws/a", "/ws/b")
        .add_symlink("/ws/b", "/ws/c")
        .add_symlink("/ws/c", "/etc")
        .add_symlink("/ws/l1", "/ws/l2")
        .add_symlink("/ws/l2", "/ws/l1")
        .add_symlink("/ws/self", "self")
        .add_symlink("/ws/dangling", "/nowhere/target")
        .add_symlink("/ws/up", "../etc")
        .add_symlink("/ws/down", "sub/dir")
        .add_symlink("/ws/sub/dir", "../../secret");
    fs
}

fn resolve(fs: &MapResolver, path: &str) -> Resolution {
    fs.resolve(path)
}

fn resolved(path: &str) -> Resolution {
    Resolution::Resolved(path.to_owned())
}

#[test]
fn map_resolver_follows_links() {
    let fs = fs();
    assert_eq!(resolve(&fs, "/ws/plain.txt"), resolved("/ws/plain.txt"));
    assert_eq!(resolve(&fs, "/ws/link/passwd"), resolved("/etc/passwd"));
    assert_eq!(resolve(&fs, "/ws/link/new.txt"), resolved("/etc/new.txt"));
    assert_eq!(resolve(&fs, "/ws/a/passwd"), resolved("/etc/passwd"));
    assert_eq!(resolve(&fs, "/ws/dangling"), resolved("/nowhere/target"));
    assert_eq!(resolve(&fs, "/ws/up/shadow"), resolved("/etc/shadow"));
    assert_eq!(resolve(&fs, "/ws/down"), resolved("/secret"));
    assert_eq!(resolve(&fs, "/"), resolved("/"));
    assert!(fs.is_dir("/ws/"));
    assert!(!fs.is_dir("/ws/link"));
}

#[test]
fn map_resolver_detects_loops() {
    let fs = fs();
    assert_eq!(
        resolve(&fs, "/ws/l1/x"),
        Resolution::Uncertain("more than 40 symlinks (a loop) at `/ws/l1`".to_owned())
    );
    assert!(matches!(resolve(&fs, "/ws/self"), Resolution::Uncertain(_)));
}

#[test]
fn map_resolver_follows_a_chain_of_forty_but_not_forty_one() {
    let mut fs = MapResolver::new();
    for i in 0..40 {
        fs.add_symlink(&format!("/l{i}"), &format!("/l{}", i + 1));
    }
    assert_eq!(resolve(&fs, "/l0"), resolved("/l40"));
    fs.add_symlink("/l40", "/l41");
    assert!(matches!(resolve(&fs, "/l0"), Resolution::Uncertain(_)));
}

#[test]
fn resolved_readings_are_added() {
    let fs = fs();
    let ctx = PathContext {
        cwd: Some("/ws"),
        home: None,
        resolver: Some(&fs),
    };
    assert_eq!(
        readings("/ws/link/new.txt", &ctx),
        [r("/ws/link/new.txt", Lexical), r("/etc/new.txt", Resolved)]
    );
    assert_eq!(readings("/ws/plain", &ctx), [r("/ws/plain", Lexical)]);
    assert_eq!(
        readings("/ws/x/../up/./passwd", &ctx),
        [r("/ws/up/passwd", Lexical), r("/etc/passwd", Resolved)]
    );
}

#[test]
fn dotdot_after_a_symlink_climbs_from_its_target() {
    // The kernel follows `link` before it applies `..`: `/ws/link/../shadow` with
    // `link -> /etc` opens `/shadow`, not `/ws/shadow` (found by the adversarial suite).
    let fs = fs();
    let ctx = PathContext {
        cwd: Some("/ws"),
        home: None,
        resolver: Some(&fs),
    };
    assert_eq!(
        readings("/ws/link/../shadow", &ctx),
        [r("/ws/shadow", Lexical), r("/shadow", Resolved)]
    );
    assert_eq!(
        readings("/ws/down/../x", &ctx),
        [r("/ws/x", Lexical), r("/x", Resolved)]
    );
    // Without a symlink before it, `..` is lexical and there is only the one reading.
    assert_eq!(readings("/ws/sub/../x", &ctx), [r("/ws/x", Lexical)]);
}

#[test]
fn every_transformed_reading_is_resolved() {
    let fs = fs();
    let ctx = PathContext {
        cwd: Some("/ws"),
        home: None,
        resolver: Some(&fs),
    };
    assert_eq!(
        readings("/ws/%6cink/x", &ctx),
        [
            r("/ws/%6cink/x", Lexical),
            r("/ws/link/x", PercentDecoded),
            r("/etc/x", Resolved)
        ]
    );
}

#[test]
fn symlink_loop_makes_the_path_uncertain() {
    let fs = fs();
    let ctx = PathContext {
        cwd: Some("/ws"),
        home: None,
        resolver: Some(&fs),
    };
    assert_eq!(
        why("/ws/l1", &ctx),
        "cannot resolve symlinks in `/ws/l1`: more than 40 symlinks (a loop) at `/ws/l1`"
    );
}

struct Broken;

impl PathResolver for Broken {
    fn resolve(&self, _: &str) -> Resolution {
        Resolution::Resolved("relative".to_owned())
    }
}

#[test]
fn resolver_giving_a_relative_path_is_uncertain() {
    let ctx = PathContext {
        cwd: None,
        home: None,
        resolver: Some(&Broken),
    };
    assert_uncertain("/ws/a", &ctx, "which is not an absolute path");
}

// --- properties -----------------------------------------------------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any input either is uncertain or yields at most `MAX_READINGS` distinct normalized
        /// absolute paths, the lexical one first; never a panic.
        #[test]
        fn readings_are_normalized_and_bounded(raw in r"[/\\.~a-c%2eE5fF0 ．／:\u{301}]{0,40}") {
            let fs = fs();
            let ctx = PathContext { cwd: Some("/ws"), home: Some("/home/u"), resolver: Some(&fs) };
            if let Ok(all) = path_readings(&raw, &ctx) {
                prop_assert!(!all.is_empty() && all.len() <= MAX_READINGS);
                prop_assert_eq!(all[0].kind, Lexical);
                let unique: HashSet<&String> = all.iter().map(|r| &r.path).collect();
                prop_assert_eq!(unique.len(), all.len());
                for reading in &all {
                    prop_assert_eq!(normalize_absolute(&reading.path), Some(reading.path.clone()));
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(raw in any::<String>()) {
            let _ = path_readings(&raw, &ws());
            let _ = normalize_absolute(&raw);
        }

        /// A reading that escapes a base always exists when the lexical one does.
        #[test]
        fn lexical_escape_is_kept(rest in "[a-z]{1,8}") {
            // `/ws/../ws` is `/ws` itself, which is under `/ws`.
            prop_assume!(rest != "ws");
            let raw = format!("/ws/../{rest}");
            let all = path_readings(&raw, &ws()).unwrap();
            prop_assert!(all.iter().any(|r| !is_under(&r.path, "/ws")));
        }
    }
}

/// The shortcuts taken for speed against the plain forms they replace.
mod shortcuts {
    use proptest::prelude::*;

    use super::super::{
        closure_search, dos_device, is_fixed_point, lexical, needs_windows_trim, windows_trim,
    };

    /// `lexical` before its already-normal shortcut.
    fn lexical_reference(absolute: &str) -> String {
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

    /// `dos_device` before it stopped upper-casing every component.
    fn dos_device_reference(component: &str) -> Option<String> {
        const DEVICES: &[&str] = &["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"];
        let stem = component.split('.').next().unwrap_or(component);
        let stem = stem.trim_end_matches(' ').to_ascii_uppercase();
        let numbered = ["COM", "LPT"].iter().any(|prefix| {
            stem.strip_prefix(prefix).is_some_and(|n| {
                (n.len() == 1 && n.bytes().all(|b| b.is_ascii_digit()))
                    || ["¹", "²", "³"].contains(&n)
            })
        });
        (numbered || DEVICES.contains(&stem.as_str())).then_some(stem)
    }

    const PATHISH: &str = "(/|\\\\|\\.|\\.\\.| |%2e|%|a|B|con|Com1|lpT²|nul\\.txt|é|．|~|:){0,8}";

    proptest! {
        #[test]
        fn a_fixed_point_is_its_own_closure(raw in PATHISH) {
            if is_fixed_point(&raw) && let Ok(spellings) = closure_search(&raw) {
                let texts: Vec<&str> = spellings.iter().map(|s| s.text.as_str()).collect();
                prop_assert_eq!(texts, vec![raw.as_str()]);
            }
        }

        #[test]
        fn needs_windows_trim_agrees_with_windows_trim(raw in PATHISH) {
            prop_assert_eq!(needs_windows_trim(&raw), windows_trim(&raw) != raw);
        }

        #[test]
        fn lexical_agrees_with_its_reference(raw in PATHISH) {
            let absolute = format!("/{raw}");
            prop_assert_eq!(lexical(&absolute), lexical_reference(&absolute));
        }

        #[test]
        fn dos_device_agrees_with_its_reference(raw in PATHISH) {
            for component in raw.split(['/', '\\']) {
                prop_assert_eq!(dos_device(component), dos_device_reference(component));
            }
        }
    }
}
