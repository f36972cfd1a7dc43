use clap::Parser;

fn main() {
    let args = tokenize::Args::parse_from(std::env::args_os());
    shared::cli::main_with("tokenize", || tokenize::run(args));
}
