use clap::Parser;

fn main() {
    let args = lm_train::Args::parse_from(std::env::args_os());
    shared::cli::main_with(lm_train::TOOL, || lm_train::run(args));
}
