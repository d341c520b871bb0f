fn main() -> std::process::ExitCode {
    bound_allocator_retention();
    selfdb::cli::main()
}

/// glibc raises its mmap threshold to the largest block freed so far (up to
/// 32 MiB), after which argon2's 19 MiB blocks come from malloc arenas that
/// keep them: the host's RSS grew to 2.7 GiB after a burst of concurrent
/// sign-ins. A fixed threshold keeps such blocks mapped on their own and
/// gives them back when they are freed (measured: 54 MiB after the same
/// burst).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_allocator_retention() {
    // SAFETY: mallopt only adjusts allocator parameters; it runs before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator_retention() {}
