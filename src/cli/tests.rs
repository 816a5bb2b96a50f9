//! Unit tests of the command line: argument rules, help texts, worker threads.

use super::*;

#[test]
fn worker_threads_are_refused_unless_a_count_in_range() {
    assert_eq!(worker_threads(None, true), Ok(Some(SERVE_WORKER_THREADS)));
    assert_eq!(worker_threads(None, false), Ok(None));
    assert_eq!(
        worker_threads(Some(" "), true),
        Ok(Some(SERVE_WORKER_THREADS))
    );
    assert_eq!(worker_threads(Some("2"), false), Ok(Some(2)));
    assert_eq!(worker_threads(Some(" 4\n"), true), Ok(Some(4)));
    assert_eq!(worker_threads(Some("1024"), true), Ok(Some(1024)));
    for bad in ["0", "abc", "-1", "1.5", "1025", "99999999999999999999999"] {
        let e = worker_threads(Some(bad), true).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("TOOLGATE_WORKER_THREADS={bad:?}"))
                && msg.contains("from 1 to 1024"),
            "{msg}"
        );
    }
}

/// Every option and positional of every subcommand says what it is in `--help`.
#[test]
fn every_argument_has_a_help_text() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg
                .get_help()
                .is_none_or(|h| h.to_string().trim().is_empty())
            {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(
        &<Cli as clap::CommandFactory>::command(),
        "toolgate",
        &mut missing,
    );
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
}

fn help(sub: &[&str]) -> String {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut cur = &mut cmd;
    for s in sub {
        cur = cur.find_subcommand_mut(s).unwrap();
    }
    cur.render_long_help().to_string()
}

#[test]
fn serve_help_names_the_variables_of_the_embedded_default() {
    let text = help(&["serve"]);
    let cfg = Config::embedded_default();
    let admin = cfg.admin_token_env.clone().unwrap();
    let TokenSource::Env(demo) = &cfg.tenants[0].token else {
        panic!("the embedded default's tenant token comes from a variable");
    };
    for var in [
        admin.as_str(),
        demo.as_str(),
        WORKER_THREADS_ENV,
        "admin_token_env",
    ] {
        assert!(text.contains(var), "serve --help lacks {var}:\n{text}");
    }
}

#[test]
fn global_options_have_their_own_heading() {
    let text = help(&["audit", "export"]);
    let heading = text.find("Global options:").expect(&text);
    let own = text.find("--tenant").expect(&text);
    let global = text.find("--log-format").expect(&text);
    assert!(own < heading && heading < global, "{text}");
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("toolgate").chain(args.iter().copied()))
}

#[test]
fn serve_flags_that_would_be_ignored_are_refused() {
    assert!(parse(&["serve", "--stdio", "--tenant", "a"]).is_ok());
    assert!(
        parse(&[
            "serve",
            "--mcp-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0"
        ])
        .is_ok()
    );
    for refused in [
        &["serve", "--stdio"][..],
        &["serve", "--tenant", "a"],
        &[
            "serve",
            "--stdio",
            "--tenant",
            "a",
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &[
            "serve",
            "--stdio",
            "--tenant",
            "a",
            "--mcp-addr",
            "127.0.0.1:0",
        ],
    ] {
        let e = parse(refused)
            .err()
            .unwrap_or_else(|| panic!("{refused:?} accepted"));
        assert!(
            matches!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict
                    | clap::error::ErrorKind::MissingRequiredArgument
            ),
            "{refused:?}: {e}"
        );
    }
}
