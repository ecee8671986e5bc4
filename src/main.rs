//! The `jobrun` binary: everything is in the library; this only hands over the
//! arguments and exits with the code it gets back.

fn main() {
    // Before any thread: the static build never loads an NSS module (src/users.rs).
    jobrun::users::builtin_name_services_only();
    std::process::exit(jobrun::cli::run(std::env::args_os()));
}
