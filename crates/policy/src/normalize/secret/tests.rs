// Test credentials are assembled at run time (`repeat`, `format!`) so that secret scanners on
// the repository do not flag this file; none of them is real.

use regex::Regex;

use super::{PATTERNS, SecretKind, find_secret, has_secret, redact_secrets};

fn found(value: &str) -> Option<SecretKind> {
    let kind = find_secret(value);
    // The evaluator's yes/no question must agree with `find_secret` on every value tested.
    assert_eq!(has_secret(value), kind.is_some(), "{value:?}");
    kind
}

#[test]
fn every_pattern_compiles() {
    for (kind, pattern) in PATTERNS {
        assert!(
            Regex::new(pattern).is_ok(),
            "pattern for {} does not compile",
            kind.name()
        );
    }
    assert!(super::DETECTOR.is_some());
}

#[test]
fn names_are_stable_snake_case() {
    let all = [
        SecretKind::PrivateKey,
        SecretKind::AwsAccessKey,
        SecretKind::AwsSecretKey,
        SecretKind::GithubToken,
        SecretKind::GitlabToken,
        SecretKind::SlackToken,
        SecretKind::SlackWebhook,
        SecretKind::StripeKey,
        SecretKind::GoogleApiKey,
        SecretKind::OpenAiKey,
        SecretKind::AnthropicKey,
        SecretKind::Jwt,
        SecretKind::NpmToken,
        SecretKind::BearerToken,
        SecretKind::BasicAuthUrl,
        SecretKind::EnvSecret,
        SecretKind::GenericAssignment,
        SecretKind::DetectorUnavailable,
    ];
    for kind in all {
        let name = kind.name();
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
    }
    assert_eq!(SecretKind::OpenAiKey.name(), "openai_key");
    assert_eq!(SecretKind::PrivateKey.name(), "private_key");
}

// ---- private keys ------------------------------------------------------------------------

#[test]
fn finds_pem_private_keys_of_every_flavour() {
    for label in ["", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "] {
        let pem = format!(
            "-----BEGIN {label}PRIVATE KEY-----\nMIIEow\n-----END {label}PRIVATE KEY-----\n"
        );
        assert_eq!(found(&pem), Some(SecretKind::PrivateKey), "{label}");
    }
}

#[test]
fn finds_pgp_private_key_block() {
    let pgp =
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----";
    assert_eq!(found(pgp), Some(SecretKind::PrivateKey));
}

#[test]
fn public_keys_and_certificates_are_not_secrets() {
    assert_eq!(
        found("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"),
        None
    );
    assert_eq!(
        found("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
        None
    );
    assert_eq!(found("-----BEGIN PGP PUBLIC KEY BLOCK-----"), None);
}

// ---- cloud and API tokens ----------------------------------------------------------------

#[test]
fn finds_aws_access_key_ids() {
    for prefix in [
        "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
    ] {
        let key = format!("id={prefix}{}", "IOSFODNN7EXAMPLE");
        assert_eq!(found(&key), Some(SecretKind::AwsAccessKey), "{prefix}");
    }
}

#[test]
fn aws_like_words_are_not_access_keys() {
    assert_eq!(found("AKIAshort"), None);
    assert_eq!(found(&format!("AKIA{}", "iosfodnn7example")), None);
    assert_eq!(found(&format!("XAKIA{}", "IOSFODNN7EXAMPLE")), None);
}

#[test]
fn finds_aws_secret_access_key_after_its_label() {
    let secret = format!("wJalrXUtnFEMI/K7MDENG/bPxRfiCY{}", "EXAMPLEKE");
    let secret = format!("{secret}Y");
    for line in [
        format!("aws_secret_access_key = {secret}"),
        format!("AWS_SECRET_ACCESS_KEY={secret}"),
        format!("{{\"SecretAccessKey\": \"{secret}\"}}"),
    ] {
        assert_eq!(found(&line), Some(SecretKind::AwsSecretKey), "{line}");
    }
}

#[test]
fn forty_characters_without_a_label_are_not_an_aws_secret() {
    // A git SHA is 40 hex characters.
    assert_eq!(found("da39a3ee5e6b4b0d3255bfef95601890afd80709"), None);
    assert_eq!(
        found("commit da39a3ee5e6b4b0d3255bfef95601890afd80709 fixed it"),
        None
    );
}

#[test]
fn finds_github_tokens() {
    for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        let token = format!(
            "{prefix}{}",
            "a1B2c3D4e5".repeat(4).get(..36).unwrap_or_default()
        );
        assert_eq!(found(&token), Some(SecretKind::GithubToken), "{prefix}");
    }
    let pat = format!("github_pat_{}_{}", "11ABCDEFG0".repeat(3), "x".repeat(59));
    assert_eq!(found(&pat), Some(SecretKind::GithubToken));
}

#[test]
fn short_github_prefixes_are_not_tokens() {
    assert_eq!(found("ghp_short"), None);
    assert_eq!(found("see github_pat_ docs"), None);
}

#[test]
fn finds_gitlab_token() {
    assert_eq!(
        found(&format!("glpat-{}", "xY3z".repeat(5))),
        Some(SecretKind::GitlabToken)
    );
}

#[test]
fn short_gitlab_prefix_is_not_a_token() {
    assert_eq!(found("glpat-abc"), None);
}

#[test]
fn finds_slack_tokens() {
    for kind in ['a', 'b', 'p', 'o', 's', 'r'] {
        let token = format!("xox{kind}-{}-{}", "1234567890", "AbCdEf123456");
        assert_eq!(found(&token), Some(SecretKind::SlackToken), "{kind}");
    }
}

#[test]
fn slack_like_words_are_not_tokens() {
    assert_eq!(found("xoxz-1234567890-abc"), None);
    assert_eq!(found("xoxb-12"), None);
}

#[test]
fn finds_slack_webhook() {
    let url = format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        "0000000",
        "00000000",
        "X".repeat(24)
    );
    assert_eq!(found(&url), Some(SecretKind::SlackWebhook));
}

#[test]
fn slack_homepage_is_not_a_webhook() {
    assert_eq!(found("https://hooks.slack.com/"), None);
    assert_eq!(found("https://slack.com/services/"), None);
}

#[test]
fn finds_stripe_keys() {
    for prefix in ["sk_live_", "rk_live_", "sk_test_"] {
        let key = format!("{prefix}{}", "4eC39HqLyjWDarjtT1zdp7dc");
        assert_eq!(found(&key), Some(SecretKind::StripeKey), "{prefix}");
    }
}

#[test]
fn stripe_publishable_key_is_not_a_secret() {
    assert_eq!(
        found(&format!("pk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc")),
        None
    );
}

#[test]
fn finds_google_api_key() {
    let key = format!("AIza{}", "SyA1bC2dE3fG4hI5jK6lM7nO8pQ9rS0tU-v");
    assert_eq!(found(&key), Some(SecretKind::GoogleApiKey));
}

#[test]
fn short_aiza_is_not_a_google_key() {
    assert_eq!(found("AIzaSyShort"), None);
}

#[test]
fn finds_openai_keys() {
    assert_eq!(
        found(&format!("sk-{}", "T3BlbkFJ".repeat(6))),
        Some(SecretKind::OpenAiKey)
    );
    assert_eq!(
        found(&format!("sk-proj-{}", "Ab_cD-12".repeat(8))),
        Some(SecretKind::OpenAiKey)
    );
}

#[test]
fn sk_alone_or_in_words_is_not_an_openai_key() {
    assert_eq!(found("sk-"), None);
    assert_eq!(found("sk-learn"), None);
    assert_eq!(found("task-management-and-planning-overview"), None);
    assert_eq!(found("risk-assessment-for-the-quarterly-plan"), None);
}

#[test]
fn finds_anthropic_key_before_openai() {
    let key = format!("sk-ant-api03-{}", "Ab_cD-12".repeat(12));
    assert_eq!(found(&key), Some(SecretKind::AnthropicKey));
}

#[test]
fn short_anthropic_prefix_is_not_a_key() {
    assert_eq!(found("sk-ant-"), None);
}

#[test]
fn finds_jwt() {
    let jwt = format!(
        "{}.{}.{}",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    );
    assert_eq!(found(&jwt), Some(SecretKind::Jwt));
}

#[test]
fn dotted_words_are_not_jwts() {
    assert_eq!(found("eyJ.a.b"), None);
    assert_eq!(found("com.example.application.Main"), None);
}

#[test]
fn finds_npm_token() {
    assert_eq!(
        found(&format!("npm_{}", "a1B2c3D4e5F6".repeat(3))),
        Some(SecretKind::NpmToken)
    );
}

#[test]
fn npm_words_are_not_tokens() {
    assert_eq!(found("npm_config_cache"), None);
}

#[test]
fn finds_bearer_token() {
    let header = format!("Authorization: Bearer {}", "abcDEF123456ghiJKL789_-");
    assert_eq!(found(&header), Some(SecretKind::BearerToken));
}

#[test]
fn the_word_bearer_is_not_a_token() {
    assert_eq!(found("the bearer of this letter"), None);
}

#[test]
fn finds_password_in_url() {
    assert_eq!(
        found("postgres://admin:hunter2@db.internal:5432/app"),
        Some(SecretKind::BasicAuthUrl)
    );
    assert_eq!(
        found("https://:tok3n@example.com/"),
        Some(SecretKind::BasicAuthUrl)
    );
}

#[test]
fn urls_without_passwords_are_not_secrets() {
    assert_eq!(found("https://user@example.com/path"), None);
    assert_eq!(found("http://localhost:8080/a@b"), None);
    assert_eq!(found("git@github.com:owner/repo.git"), None);
}

#[test]
fn finds_env_style_secret() {
    for line in [
        "DB_PASSWORD=Tr0ub4dor&3",
        "export STRIPE_SECRET=abcdefgh12",
        "MY_API_TOKEN = 'zz9plural'",
    ] {
        assert_eq!(found(line), Some(SecretKind::EnvSecret), "{line}");
    }
}

#[test]
fn env_placeholders_and_short_values_are_not_secrets() {
    assert_eq!(found("DB_PASSWORD=${DB_PASSWORD}"), None);
    assert_eq!(found("DB_PASSWORD=short"), None);
    assert_eq!(found("DB_PASSWORD_FILE=/run/secrets/db"), None);
}

#[test]
fn finds_generic_assignments_case_insensitively() {
    for line in [
        "password=hunter2hunter2",
        "PASSWD: correcthorse",
        "api_key=0123456789abcdef",
        "x-api-key: 0123456789abcdef",
        "Secret = s3cr3tvalue",
        "https://api.example.com/v1?token=abcdef123456&x=1",
        "{\"password\": \"hunter2hunter2\"}",
        "db_password: Tr0ub4dor",
    ] {
        assert_eq!(found(line), Some(SecretKind::GenericAssignment), "{line}");
    }
}

#[test]
fn ordinary_prose_is_not_a_secret() {
    assert_eq!(found("the password is in the vault"), None);
    assert_eq!(found("reset passwords=weekly"), None);
    assert_eq!(found("password=short"), None);
    assert_eq!(found("password=********"), None);
    assert_eq!(found("password=<your-password>"), None);
    assert_eq!(found("tokens: many"), None);
}

#[test]
fn ordinary_values_are_not_secrets() {
    for value in [
        "",
        "/home/user/projects/portcullis/src/main.rs",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "123e4567-e89b-12d3-a456-426614174000",
        "git status",
        "https://example.com/search?q=rust",
        "SGVsbG8sIHdvcmxkISBUaGlzIGlzIGJhc2U2NA==",
    ] {
        assert_eq!(found(value), None, "{value}");
    }
}

// ---- redaction ---------------------------------------------------------------------------

#[test]
fn redacts_nothing_in_clean_text() {
    assert_eq!(redact_secrets("git status"), None);
}

#[test]
fn redacts_every_credential_and_keeps_labels() {
    let gh = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
    let text = format!("token {gh} and key {aws}; password=hunter2hunter2 done");
    assert_eq!(
        redact_secrets(&text),
        Some(
            "token [REDACTED:github_token] and key [REDACTED:aws_access_key]; \
             password=[REDACTED:generic_assignment] done"
                .to_owned()
        )
    );
}

#[test]
fn redacts_whole_private_key_block() {
    let text = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----\nafter";
    assert_eq!(
        redact_secrets(text),
        Some("before\n[REDACTED:private_key]\nafter".to_owned())
    );
}

#[test]
fn redacts_to_the_end_when_a_private_key_is_cut_off() {
    let text = "x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz";
    assert_eq!(
        redact_secrets(text),
        Some("x [REDACTED:private_key]".to_owned())
    );
}

#[test]
fn redacts_only_the_password_of_a_url() {
    assert_eq!(
        redact_secrets("postgres://admin:hunter2@db/app"),
        Some("postgres://[REDACTED:basic_auth_url]@db/app".to_owned())
    );
}

#[test]
fn overlapping_detections_redact_once_with_the_most_specific_kind() {
    let key = format!("sk-ant-api03-{}", "Ab_cD-12".repeat(12));
    // `api_key=` labels it too, and the generic span starts at the same place.
    assert_eq!(
        redact_secrets(&format!("api_key={key}")),
        Some("api_key=[REDACTED:anthropic_key]".to_owned())
    );
}

#[test]
fn redaction_keeps_non_ascii_text_intact() {
    let text = "mot de passe \u{e9}t\u{e9}: password=h\u{e9}llo-w\u{f6}rld \u{1f512}";
    assert_eq!(
        redact_secrets(text),
        Some(
            "mot de passe \u{e9}t\u{e9}: password=[REDACTED:generic_assignment] \u{1f512}"
                .to_owned()
        )
    );
}

#[test]
fn redacted_text_is_not_detected_again() {
    let samples = [
        "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----".to_owned(),
        format!("AKIA{}", "IOSFODNN7EXAMPLE"),
        format!(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY{}",
            "EXAMPLEKEY"
        ),
        format!("ghp_{}", "a1B2c3D4e5F6".repeat(3)),
        format!("glpat-{}", "xY3z".repeat(5)),
        format!("xoxb-{}-{}", "1234567890", "AbCdEf123456"),
        format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            "0000000",
            "00000000",
            "X".repeat(24)
        ),
        format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc"),
        format!("AIza{}", "SyA1bC2dE3fG4hI5jK6lM7nO8pQ9rS0tU-v"),
        format!("sk-{}", "T3BlbkFJ".repeat(6)),
        format!("sk-ant-api03-{}", "Ab_cD-12".repeat(12)),
        format!("npm_{}", "a1B2c3D4e5F6".repeat(3)),
        format!("Authorization: Bearer {}", "abcDEF123456ghiJKL789_-"),
        "postgres://admin:hunter2@db.internal:5432/app".to_owned(),
        "DB_PASSWORD=Tr0ub4dor&3".to_owned(),
        "{\"password\": \"hunter2hunter2\", \"token\": \"abcdefgh1234\"}".to_owned(),
    ];
    for sample in samples {
        let redacted = redact_secrets(&sample);
        let Some(redacted) = redacted else {
            panic!("`{sample}` was not redacted");
        };
        assert!(redacted.contains("[REDACTED:"), "{redacted}");
        assert_eq!(
            found(&redacted),
            None,
            "`{sample}` redacted to `{redacted}`"
        );
    }
}

proptest::proptest! {
    #[test]
    fn detection_and_redaction_never_panic(value in "\\PC{0,200}") {
        let kind = find_secret(&value);
        let redacted = redact_secrets(&value);
        proptest::prop_assert_eq!(kind.is_some(), redacted.is_some());
    }
}
