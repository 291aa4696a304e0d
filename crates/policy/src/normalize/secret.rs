//! Credential detection for the `secret` condition and audit redaction.
//!
//! A tool call that carries a credential is either exfiltrating it or about to leak it into a
//! place it does not belong (an issue, a chat message, a log). The detector recognizes the
//! formats that identify themselves — provider prefixes, PEM armour, labelled assignments — and
//! not arbitrary high-entropy strings, which would flag every git SHA and UUID.
//!
//! All patterns are compiled once into one [`RegexSet`] (for the yes/no question) plus one
//! [`Regex`] each (for redaction spans). The `regex` crate matches in linear time, so hostile
//! input cannot make detection slow. If the patterns ever fail to compile, that is a bug; the
//! detector then reports [`SecretKind::DetectorUnavailable`] for every value, so a `secret` deny
//! rule still fires and redaction hides the whole value (fail closed).

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

#[cfg(test)]
mod tests;

/// The kind of credential found in a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// A PEM private key block (`-----BEGIN ... PRIVATE KEY-----`, RSA, EC, DSA, OPENSSH,
    /// ENCRYPTED) or a PGP private key block.
    PrivateKey,
    /// An AWS access key id (`AKIA...`, `ASIA...` and the other principal prefixes).
    AwsAccessKey,
    /// An AWS secret access key after an `aws_secret_access_key`-style label.
    AwsSecretKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// A GitLab personal access token (`glpat-`).
    GitlabToken,
    /// A Slack API token (`xoxb-`, `xoxp-`, ...).
    SlackToken,
    /// A Slack incoming-webhook URL, which lets anyone post to the channel.
    SlackWebhook,
    /// A Stripe secret or restricted key (`sk_live_`, `rk_live_`, and their `_test_` forms).
    StripeKey,
    /// A Google API key (`AIza...`).
    GoogleApiKey,
    /// An OpenAI API key (`sk-...`, `sk-proj-...`).
    OpenAiKey,
    /// An Anthropic API key (`sk-ant-...`).
    AnthropicKey,
    /// A JSON Web Token (three base64url segments, the first starting `eyJ`).
    Jwt,
    /// An npm access token (`npm_...`).
    NpmToken,
    /// An HTTP `Bearer` credential, as in an `Authorization` header.
    BearerToken,
    /// A URL with a password in it (`scheme://user:pass@host`).
    BasicAuthUrl,
    /// A `.env`-style `NAME=value` where `NAME` ends in `_KEY`, `_TOKEN`, `_SECRET`, `_PASSWORD`.
    EnvSecret,
    /// A labelled value such as `password=...`, `api_key: ...`, `token=...`.
    GenericAssignment,
    /// The detector could not be built (a bug); every value is treated as carrying a secret.
    DetectorUnavailable,
}

impl SecretKind {
    /// A stable snake_case name for decision traces and redaction markers.
    pub fn name(&self) -> &'static str {
        match self {
            SecretKind::PrivateKey => "private_key",
            SecretKind::AwsAccessKey => "aws_access_key",
            SecretKind::AwsSecretKey => "aws_secret_key",
            SecretKind::GithubToken => "github_token",
            SecretKind::GitlabToken => "gitlab_token",
            SecretKind::SlackToken => "slack_token",
            SecretKind::SlackWebhook => "slack_webhook",
            SecretKind::StripeKey => "stripe_key",
            SecretKind::GoogleApiKey => "google_api_key",
            SecretKind::OpenAiKey => "openai_key",
            SecretKind::AnthropicKey => "anthropic_key",
            SecretKind::Jwt => "jwt",
            SecretKind::NpmToken => "npm_token",
            SecretKind::BearerToken => "bearer_token",
            SecretKind::BasicAuthUrl => "basic_auth_url",
            SecretKind::EnvSecret => "env_secret",
            SecretKind::GenericAssignment => "generic_assignment",
            SecretKind::DetectorUnavailable => "detector_unavailable",
        }
    }
}

/// The patterns, most specific first: [`find_secret`] reports the first kind that matches, and
/// redaction prefers it when spans of two kinds start at the same place. A named group `s`, when
/// present, is the part to redact (the value, not its label or the character after it).
///
/// `(?-u:\b)` is an ASCII word boundary: the Unicode one would force the slower engine.
const PATTERNS: &[(SecretKind, &str)] = &[
    (
        SecretKind::PrivateKey,
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)",
    ),
    (
        SecretKind::AwsAccessKey,
        r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?-u:\b)",
    ),
    (
        SecretKind::AwsSecretKey,
        r#"(?i:(?:aws_?)?secret_?access_?key)["']?\s*[:=]\s*["']?(?P<s>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|\z)"#,
    ),
    (
        SecretKind::GithubToken,
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,})(?-u:\b)",
    ),
    (SecretKind::GitlabToken, r"(?-u:\b)glpat-[A-Za-z0-9_-]{20,}"),
    (
        SecretKind::SlackWebhook,
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{8,}",
    ),
    (
        SecretKind::SlackToken,
        r"(?-u:\b)xox[abposr]-[A-Za-z0-9-]{10,}",
    ),
    (
        SecretKind::StripeKey,
        r"(?-u:\b)[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
    ),
    (SecretKind::GoogleApiKey, r"(?-u:\b)AIza[0-9A-Za-z_-]{35}"),
    (
        SecretKind::AnthropicKey,
        r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}",
    ),
    (
        SecretKind::OpenAiKey,
        r"(?-u:\b)sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{20,})",
    ),
    (SecretKind::NpmToken, r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)"),
    (
        SecretKind::Jwt,
        r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    ),
    (
        SecretKind::BearerToken,
        r"(?i:bearer)\s+(?P<s>[A-Za-z0-9._~+/-]{20,}=*)",
    ),
    (
        SecretKind::BasicAuthUrl,
        r"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://(?P<s>[^\s/?#@:\[]*:[^\s/?#@]+)@[^\s/?#@]+",
    ),
    // Values starting with `$`, `<`, `{`, `[` or `*` are placeholders (`${DB_PASSWORD}`,
    // `<token>`, `[REDACTED:...]`, `********`), not credentials; skipping `[` also keeps a
    // redacted value from being detected again.
    (
        SecretKind::EnvSecret,
        r#"(?-u:\b)[A-Z0-9_]*_(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD)\s*=\s*["']?(?P<s>[^\s"'$<{\[*][^\s"']{7,})"#,
    ),
    // The label must not be glued to a preceding letter or digit (`passwords`, `mytoken` are
    // not labels) but may follow `_` or `-` (`db_password`, `x-api-key`).
    (
        SecretKind::GenericAssignment,
        r#"(?i)(?:^|[^A-Za-z0-9])(?:password|passwd|secret|api[_-]?key|apikey|token)["']?\s*[:=]\s*["']?(?P<s>[^\s"'$<{\[*][^\s"',;&]{7,})"#,
    ),
];

/// The compiled patterns.
struct Detector {
    set: RegexSet,
    each: Vec<(SecretKind, Regex)>,
}

impl Detector {
    /// `None` only if a constant pattern does not compile, which a unit test rules out.
    fn build() -> Option<Detector> {
        let set = RegexSet::new(PATTERNS.iter().map(|(_, p)| *p)).ok()?;
        let each = PATTERNS
            .iter()
            .map(|(kind, p)| Regex::new(p).ok().map(|r| (*kind, r)))
            .collect::<Option<Vec<_>>>()?;
        Some(Detector { set, each })
    }
}

static DETECTOR: LazyLock<Option<Detector>> = LazyLock::new(Detector::build);

/// The first credential found in `value`, if any (in the priority order of the patterns, not
/// the position in the string).
pub fn find_secret(value: &str) -> Option<SecretKind> {
    let Some(detector) = DETECTOR.as_ref() else {
        return Some(SecretKind::DetectorUnavailable);
    };
    let first = detector.set.matches(value).iter().next()?;
    // The set and `PATTERNS` have the same indices; a miss here would be a bug, and reporting a
    // secret is the fail-closed answer.
    Some(
        PATTERNS
            .get(first)
            .map_or(SecretKind::DetectorUnavailable, |(kind, _)| *kind),
    )
}

/// Whether `value` carries any credential: `find_secret(value).is_some()`, but the regex set
/// may stop at the first match instead of finding which patterns match.
pub fn has_secret(value: &str) -> bool {
    DETECTOR.as_ref().is_none_or(|d| d.set.is_match(value))
}

/// `value` with every detected credential replaced by `[REDACTED:<kind>]`, or `None` when it
/// carries none. Labels stay readable (`password=[REDACTED:generic_assignment]`) so an auditor
/// can see what was there without seeing it.
pub fn redact_secrets(value: &str) -> Option<String> {
    let Some(detector) = DETECTOR.as_ref() else {
        return Some(redaction_marker(SecretKind::DetectorUnavailable));
    };
    if !detector.set.is_match(value) {
        return None;
    }
    // (start, end, priority, kind) of every span of every kind.
    let mut spans: Vec<(usize, usize, usize, SecretKind)> = Vec::new();
    for (priority, (kind, regex)) in detector.each.iter().enumerate() {
        for caps in regex.captures_iter(value) {
            if let Some(m) = caps.name("s").or_else(|| caps.get(0))
                && !m.is_empty()
            {
                spans.push((m.start(), m.end(), priority, *kind));
            }
        }
    }
    // Earliest first, then longest, then most specific; overlapping spans merge into the first.
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let mut merged: Vec<(usize, usize, SecretKind)> = Vec::new();
    for (start, end, _, kind) in spans {
        match merged.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end, kind)),
        }
    }
    if merged.is_empty() {
        // The set matched but no span was found: the two disagree, which is a bug. Hide it all.
        return Some(redaction_marker(SecretKind::DetectorUnavailable));
    }
    let mut out = String::with_capacity(value.len());
    let mut at = 0;
    for (start, end, kind) in merged {
        // Regex spans lie on character boundaries; if one did not, hide the whole value.
        let Some(clear) = value.get(at..start) else {
            return Some(redaction_marker(SecretKind::DetectorUnavailable));
        };
        out.push_str(clear);
        out.push_str(&redaction_marker(kind));
        at = end;
    }
    out.push_str(value.get(at..).unwrap_or_default());
    Some(out)
}

fn redaction_marker(kind: SecretKind) -> String {
    format!("[REDACTED:{}]", kind.name())
}
