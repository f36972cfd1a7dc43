use clap::Parser;

fn main() {
    let args = numericalize::Args::parse_from(std::env::args_os());
    shared::cli::main_with("numericalize", || numericalize::run(args));
}
