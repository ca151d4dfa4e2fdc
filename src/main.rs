//! The `git-push-mirror` binary: everything lives in the library; see `cli::main`.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    git_push_mirror::cli::main()
}

/// glibc gives each thread that allocates its own malloc arena, and keeps the memory of each:
/// a worker that reads 50,000 refs on one thread and pushes them on another held twice its live
/// heap (BENCHMARKS.md, P7). Two arenas are plenty for a handful of threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc tunable; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
