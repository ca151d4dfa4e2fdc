//! The man page of the configuration files, `git-push-mirror.toml(5)`, rendered from the table of
//! keys ([`crate::config::keys`], which a test holds equal to what the parser accepts), and the
//! FILES and ENVIRONMENT sections every man page of the program gets.

use crate::config::keys::{KeyDoc, Table, keys_of};
use crate::config::{CONFIG_ENV, REPO_CONFIG_FILE, SYSTEM_CONFIG_ENV, SYSTEM_CONFIG_FILE};
use roff::{Roff, bold, italic, roman};

/// The page's name and section, and its file name.
pub const NAME: &str = "git-push-mirror.toml";
pub const FILE_NAME: &str = "git-push-mirror.toml.5";

/// A paragraph with a bold tag (`.TP`).
fn tagged(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []).text([bold(tag)]).text([roman(text)]);
}

/// The FILES section: where the configuration, the spool, the state and the log are.
pub fn files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    tagged(
        roff,
        SYSTEM_CONFIG_FILE,
        &format!("The system-wide global configuration (another file when ${SYSTEM_CONFIG_ENV} names one)."),
    );
    tagged(
        roff,
        "$XDG_CONFIG_HOME/git-push-mirror/config.toml",
        &format!(
            "The user's global configuration (default ~/.config/git-push-mirror/config.toml), read instead of the \
             system file; --config FILE and ${CONFIG_ENV} name one that wins over both."
        ),
    );
    tagged(
        roff,
        &format!("REPO/{REPO_CONFIG_FILE}"),
        "A repository's own mirrors, which add, set and remove edit in place.",
    );
    tagged(
        roff,
        "$XDG_STATE_HOME/git-push-mirror/",
        "Without spool_dir, state_dir and log_file in the global configuration: spool/, state/ and \
         git-push-mirror.log of the user the hook runs as (default ~/.local/state/git-push-mirror/).",
    );
    tagged(
        roff,
        "REPO/hooks/post-receive, REPO/hooks/post-receive.d/git-push-mirror, $LOCAL_CODE/hooks/common/post-receive",
        "The hook install writes: plain, Gitea/Forgejo and gitolite; `git-push-mirror check` checks it.",
    );
}

/// The ENVIRONMENT section: the variables that say where the configuration is.
pub fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    tagged(
        roff,
        CONFIG_ENV,
        "The global configuration file to use (it must exist), as --config does.",
    );
    tagged(
        roff,
        SYSTEM_CONFIG_ENV,
        &format!(
            "A file to read in place of {SYSTEM_CONFIG_FILE} (it need not exist), as git's GIT_CONFIG_SYSTEM: a \
             container's or a test suite's own system file."
        ),
    );
    tagged(
        roff,
        "XDG_CONFIG_HOME, XDG_STATE_HOME, HOME",
        "Where the user's configuration and the default spool, state and log are.",
    );
}

fn key_paragraphs(roff: &mut Roff, table: Table, show_defaults_scope: bool) {
    for doc in keys_of(table) {
        key_paragraph(roff, doc, show_defaults_scope);
    }
}

fn key_paragraph(roff: &mut Roff, doc: &KeyDoc, show_defaults_scope: bool) {
    roff.control("TP", []);
    let mut tag = vec![bold(doc.key)];
    if !doc.example.is_empty() {
        tag.extend([roman(" = "), italic(doc.example)]);
    }
    roff.text(tag);
    let mut text = format!("{} Default: {}.", doc.meaning, doc.default);
    if show_defaults_scope && !doc.in_defaults {
        text.push_str(" Not in [defaults].");
    }
    roff.text([roman(text)]);
}

/// The whole page, for `version` of the program.
pub fn render(version: &str) -> String {
    let mut roff = Roff::new();
    let source = format!("git-push-mirror {version}");
    roff.control("TH", [NAME, "5", "", source.as_str(), "File Formats"]);
    roff.control("SH", ["NAME"]).text([roman(format!(
        "{NAME} - configuration files of git-push-mirror: the global config.toml and each repository's {REPO_CONFIG_FILE}"
    ))]);
    roff.control("SH", ["SYNOPSIS"]).text([roman(format!(
        "{SYSTEM_CONFIG_FILE}, $XDG_CONFIG_HOME/git-push-mirror/config.toml, REPO/{REPO_CONFIG_FILE}"
    ))]);
    roff.control("SH", ["DESCRIPTION"]).text([roman(
        "Both files are TOML. Unknown keys are errors, reported as file:line:column, so a typo never silently \
         disables a filter. Durations are written \"2s\", \"5m\", \"1h\"; sizes \"1900MiB\" (B, KiB, MiB, GiB, \
         or KB, MB, GB). Relative paths are relative to the file's directory. A running worker applies changes of \
         either file to the next update it starts.",
    )]);
    roff.control("PP", []).text([roman(
        "The global file is the first of: --config FILE, $GIT_PUSH_MIRROR_CONFIG, \
         $XDG_CONFIG_HOME/git-push-mirror/config.toml, /etc/git-push-mirror/config.toml (see FILES); without \
         any, built-in defaults apply.",
    )]);

    roff.control("SH", ["GLOBAL FILE"])
        .text([roman("The top level of config.toml:")]);
    key_paragraphs(&mut roff, Table::Global, false);
    roff.control("SS", ["[retry]"]);
    key_paragraphs(&mut roff, Table::Retry, false);
    roff.control("SS", ["[notify]"]);
    key_paragraphs(&mut roff, Table::Notify, false);
    roff.control("SS", ["[defaults]"]).text([roman(
        "Any key of MIRROR KEYS not marked otherwise, applied to every mirror (a repository's own and fleet \
         mirrors) that does not set it.",
    )]);
    roff.control("SS", ["[mirror.NAME]"]).text([roman(
        "A fleet mirror: the MIRROR KEYS, with repos (required) and a url containing {name}. A repository's own \
         [mirror.NAME] of the same name replaces it for that repository.",
    )]);

    roff.control("SH", ["REPOSITORY FILE"]).text([roman(format!(
        "The top level of REPO/{REPO_CONFIG_FILE}, in the bare repository:"
    ))]);
    key_paragraphs(&mut roff, Table::Repo, false);

    roff.control("SH", ["MIRROR KEYS"]).text([roman(
        "The keys of a [mirror.NAME] table (NAME: letters, digits, '.', '_' and '-'), in either file:",
    )]);
    key_paragraphs(&mut roff, Table::Mirror, true);

    files(&mut roff);
    environment(&mut roff);

    roff.control("SH", ["EXAMPLES"]);
    roff.control("nf", []);
    for line in [
        "# REPO/push-mirror.toml",
        "protected_branches = [\"main\", \"release/*\"]",
        "",
        "[mirror.github]",
        "url = \"https://github.com/acme/app.git\"",
        "username = \"acme-bot\"",
        "password_file = \"/etc/git-push-mirror/github.token\"",
        "branches = [\"main\", \"release/*\"]",
        "",
        "# /etc/git-push-mirror/config.toml",
        "spool_dir = \"/var/spool/git-push-mirror\"",
        "state_dir = \"/var/lib/git-push-mirror\"",
        "log_file = \"/var/log/git-push-mirror/git-push-mirror.log\"",
        "repos_root = \"/home/git/repositories\"",
        "",
        "[mirror.github]",
        "repos = [\"acme/*\", \"!acme/private-*\"]",
        "url = \"git@github.com:acme-mirror/{name}.git\"",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);

    roff.control("SH", ["SEE ALSO"]).text([roman(
        "git-push-mirror(1), git-push-mirror-add(1), git-push-mirror-set(1), git-push-mirror-check(1); the \
         reference docs/configuration.md of git-push-mirror.",
    )]);
    roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_key_and_its_default() {
        let page = render("0.0.0");
        assert!(page.contains(".TH git-push-mirror.toml 5"));
        for doc in crate::config::keys::KEYS {
            assert!(
                page.contains(&format!("\\fB{}\\fR", doc.key.replace('-', "\\-"))),
                "{}",
                doc.key
            );
        }
        for section in [
            "GLOBAL FILE",
            "REPOSITORY FILE",
            "MIRROR KEYS",
            "FILES",
            "ENVIRONMENT",
            "SEE ALSO",
        ] {
            assert!(
                page.contains(&format!(".SH \"{section}\"")) || page.contains(&format!(".SH {section}\n")),
                "{section}"
            );
        }
    }
}
