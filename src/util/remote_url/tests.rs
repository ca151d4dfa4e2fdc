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
