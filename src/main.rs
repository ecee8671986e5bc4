//! The `jobrun` binary: everything is in the library; this only hands over the
//! arguments and exits with the code it gets back.

fn main() {
    std::process::exit(jobrun::cli::run(std::env::args_os()));
}
