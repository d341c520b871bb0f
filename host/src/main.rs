//! The `selfdb` binary: the allocator, then the command line.

mod allocator;

#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::Allocator;

fn main() -> std::process::ExitCode {
    selfdb::cli::main()
}
