//! The `git-push-mirror` binary: everything lives in the library; see `cli::main`.

fn main() -> std::process::ExitCode {
    git_push_mirror::cli::main()
}
