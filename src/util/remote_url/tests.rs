//! Mirror URLs in every form git accepts, and what is shown of them.

#[test]
fn http_origins_drop_user_info_and_path() {
    assert_eq!(
        http_origin("HTTPS://bob@git.example.com:8443/a/b.git").as_deref(),
        Some("https://git.example.com:8443")
    );
    assert_eq!(
        http_origin("http://127.0.0.1:9/x").as_deref(),
        Some("http://127.0.0.1:9")
    );
    assert_eq!(http_origin("https://h").as_deref(), Some("https://h"));
    assert_eq!(http_origin("git@github.com:a/b.git"), None);
    assert_eq!(http_origin("file:///srv/x"), None);
}

use super::*;

#[test]
fn misspelled_schemes_get_the_url_that_was_meant() {
    for (typed, meant) in [
        ("htps://github.com/a/b.git", "https://github.com/a/b.git"),
        ("HTTPS:/github.com/a/b.git", "https://github.com/a/b.git"),
        ("https:github.com/a/b.git", "https://github.com/a/b.git"),
        ("http//h:8080/a.git", "http://h:8080/a.git"),
        ("ssh:/git@h/srv/a.git", "ssh://git@h/srv/a.git"),
        ("shh://git@h/srv/a.git", "ssh://git@h/srv/a.git"),
        ("htttps://h/a.git", "https://h/a.git"),
        ("file:/srv/backup.git", "file:///srv/backup.git"),
        ("fiel:///srv/backup.git", "file:///srv/backup.git"),
        ("git//h/a.git", "git://h/a.git"),
    ] {
        assert_eq!(scheme_typo(typed).as_deref(), Some(meant), "{typed}");
    }
    for fine in [
        "https://github.com/a/b.git",
        "git+ssh://h/a.git",
        "git@github.com:a/b.git",
        "git:/srv/a.git",
        "backup:/srv/a.git",
        "/srv/git/a.git",
        "ext::sh -c x",
        "svn://h/a",
    ] {
        assert_eq!(scheme_typo(fine), None, "{fine}");
    }
}

#[test]
fn transports_are_classified_like_git() {
    assert_eq!(transport_of("https://github.com/a/b.git"), Transport::Https);
    assert_eq!(transport_of("HTTP://host/a"), Transport::Http);
    assert_eq!(transport_of("ssh://git@host:22/a.git"), Transport::Ssh);
    assert_eq!(transport_of("git+ssh://host/a.git"), Transport::Ssh);
    assert_eq!(transport_of("git@github.com:acme/app.git"), Transport::Ssh);
    assert_eq!(transport_of("git://127.0.0.1:9418/a.git"), Transport::Git);
    assert_eq!(transport_of("file:///srv/git/a.git"), Transport::File);
    assert_eq!(transport_of("/srv/git/a.git"), Transport::File);
    assert_eq!(transport_of("./relative/a.git"), Transport::File);
    assert_eq!(transport_of("dir/with:colon"), Transport::File);
}

#[test]
fn remote_helpers_and_unknown_schemes_are_refused() {
    assert_eq!(
        transport_of("ext::sh -c touch% /tmp/x"),
        Transport::Refused("ext::".into())
    );
    assert_eq!(transport_of("fd::3"), Transport::Refused("fd::".into()));
    assert_eq!(
        transport_of("codecommit::us-east-1://repo"),
        Transport::Refused("codecommit::".into())
    );
    assert_eq!(transport_of("ftp://host/a"), Transport::Refused("ftp://".into()));
}

#[test]
fn credentials_are_split_out_of_urls() {
    let split = split_credentials("https://bob:s3cr%40t@example.com/a.git");
    assert_eq!(split.url, "https://example.com/a.git");
    assert_eq!(split.username.as_deref(), Some("bob"));
    assert_eq!(split.password.as_deref(), Some("s3cr@t"));

    let user_only = split_credentials("https://oauth2@gitlab.example/a.git");
    assert_eq!(user_only.username.as_deref(), Some("oauth2"));
    assert_eq!(user_only.password, None);

    let plain = split_credentials("git@github.com:a/b.git");
    assert_eq!(plain.url, "git@github.com:a/b.git");
    assert_eq!(plain.username, None);
}

#[test]
fn mirrors_with_a_password_are_shown_with_masked_userinfo() {
    assert_eq!(
        display_url("https://host/x.git", true),
        "https://*****:*****@host/x.git"
    );
    assert_eq!(display_url("https://host/x.git", false), "https://host/x.git");
    assert_eq!(
        display_url("https://bob@host/x.git", true),
        "https://*****:*****@host/x.git"
    );
    assert_eq!(display_url("ssh://git@host/x.git", true), "ssh://git@host/x.git");
    assert_eq!(display_url("git@host:x.git", true), "git@host:x.git");
}

#[test]
fn redacted_urls_hide_userinfo() {
    assert_eq!(
        redact_url("https://bob:pw@host/x.git"),
        "https://*****:*****@host/x.git"
    );
    assert_eq!(redact_url("https://token@host/x.git"), "https://*****:*****@host/x.git");
    assert_eq!(redact_url("https://host/x@y.git"), "https://host/x@y.git");
    assert_eq!(redact_url("git@github.com:a/b.git"), "git@github.com:a/b.git");
    assert_eq!(redact_url("ssh://root@host:2299/x.git"), "ssh://root@host:2299/x.git");
    assert_eq!(redact_url("ssh://root:pw@host/x.git"), "ssh://*****:*****@host/x.git");
}

/// A URL and what it must read as: host, port, user, password, host identity.
type Form = (
    &'static str,
    Option<&'static str>,
    Option<u16>,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

const FORMS: &[Form] = &[
    (
        "https://bob:s3cr%40t@Git.Example.com:8443/a.git",
        Some("git.example.com"),
        Some(8443),
        Some("bob"),
        Some("s3cr@t"),
        "git.example.com:8443",
    ),
    ("https://oauth2@h/a.git", Some("h"), None, Some("oauth2"), None, "h"),
    (
        "http://[::1]:8080/a.git",
        Some("::1"),
        Some(8080),
        None,
        None,
        "[::1]:8080",
    ),
    (
        "ssh://git@[::1]:2222/a.git",
        Some("::1"),
        Some(2222),
        Some("git"),
        None,
        "[::1]:2222",
    ),
    (
        "ssh://git@h:22/srv/a.git",
        Some("h"),
        Some(22),
        Some("git"),
        None,
        "h:22",
    ),
    ("ssh://h", Some("h"), None, None, None, "h"),
    (
        "git://127.0.0.1:9418/a.git",
        Some("127.0.0.1"),
        Some(9418),
        None,
        None,
        "127.0.0.1:9418",
    ),
    (
        "git@github.com:acme/app.git",
        Some("github.com"),
        None,
        None,
        None,
        "github.com",
    ),
    ("backup:/srv/git/a.git", Some("backup"), None, None, None, "backup"),
    ("[h:2200]:a.git", Some("h"), Some(2200), None, None, "h:2200"),
    ("[git@h:2200]:a.git", Some("h"), Some(2200), None, None, "h:2200"),
    ("git@[h:2200]:a.git", Some("h"), Some(2200), None, None, "h:2200"),
    ("[::1]:a.git", Some("::1"), None, None, None, "::1"),
    ("file:///srv/git/a.git", None, None, None, None, "file"),
    ("/srv/git/a.git", None, None, None, None, "file"),
    ("./relative/a.git", None, None, None, None, "file"),
];

#[test]
fn every_form_git_accepts_gives_its_host_port_and_credentials() {
    for &(url, host, port, user, password, identity) in FORMS {
        let parsed = RemoteUrl::parse(url);
        assert_eq!(parsed.host(), host, "{url}");
        assert_eq!(parsed.port(), port, "{url}");
        assert_eq!(parsed.username().as_deref(), user, "{url}");
        assert_eq!(parsed.password().as_deref(), password, "{url}");
        assert_eq!(parsed.host_identity(), identity, "{url}");
    }
}

#[test]
fn credentials_leave_the_rest_of_the_url_as_written() {
    let parsed = RemoteUrl::parse("https://bob:pw@Host:8443/a.git");
    assert_eq!(parsed.without_credentials(), "https://Host:8443/a.git");
    assert_eq!(parsed.http_origin().as_deref(), Some("https://Host:8443"));
    // A `?` in a password is the password's, not a query: the origin and the display keep it out.
    let odd = RemoteUrl::parse("https://bob:p?ss#word@h/a.git");
    assert_eq!(odd.password().as_deref(), Some("p?ss#word"));
    assert_eq!(odd.http_origin().as_deref(), Some("https://h"));
}

#[test]
fn secrets_are_never_shown() {
    for (url, secret) in [
        ("https://bob:hunter2@h/a.git", "hunter2"),
        ("https://ghp_token123@h/a.git", "ghp_token123"),
        ("http://u:hunter2@[::1]:8080/a.git", "hunter2"),
        ("ssh://git:hunter2@h:2222/a.git", "hunter2"),
        // No parser accepts these; their passwords stay hidden all the same.
        ("ssh://git:hunter2@h:99999/a.git", "hunter2"),
        ("https://u:hunter2@/", "hunter2"),
    ] {
        let parsed = RemoteUrl::parse(url);
        for shown in [
            parsed.redacted(),
            parsed.shown(true),
            parsed.shown(false),
            redact_url(url),
        ] {
            assert!(!shown.contains(secret), "{url} shown as {shown}");
            assert!(shown.contains("*****:*****@"), "{url} shown as {shown}");
        }
        assert!(!parsed.without_credentials().contains(secret), "{url}");
    }
    // The user of an SSH address is part of it, and no secret.
    assert_eq!(RemoteUrl::parse("git@h:a.git").shown(true), "git@h:a.git");
    assert_eq!(RemoteUrl::parse("ssh://git@h/a.git").redacted(), "ssh://git@h/a.git");
}

#[test]
fn bracketed_scp_like_and_ssh_urls_of_one_host_and_port_are_one_host() {
    assert_eq!(host_of("[h:22]:a"), host_of("ssh://h:22/b"));
    assert_eq!(host_of("[h:22]:a"), "h:22");
    assert_ne!(host_of("[h:22]:a"), host_of("[h:2222]:a"));
    // git's helper names are scheme characters: `[::1]:path` is an scp-like IPv6 address.
    assert_eq!(transport_of("[::1]:a.git"), Transport::Ssh);
    assert_eq!(transport_of("x-y.z+1::a"), Transport::Refused("x-y.z+1::".into()));
}
