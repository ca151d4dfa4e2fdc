//! The `git-push-mirror` binary: everything lives in the library; see `cli::main`.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    git_push_mirror::cli::main()
}

/// glibc gives each thread that allocates an arena of its own and keeps what each arena grew
/// to: a worker that reads 50,000 refs on one thread and pushes them on another peaked at 77 MiB
/// against a 34 MB live heap. One arena serves our few allocating threads (BENCHMARKS.md, P7:
/// 47 MiB, no slower).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc tunable; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
