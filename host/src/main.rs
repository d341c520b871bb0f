fn main() -> std::process::ExitCode {
    selfdb::cli::main()
}
