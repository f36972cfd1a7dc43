use clap::Parser;

fn main() {
    let args = lr_find::Args::parse_from(std::env::args_os());
    shared::cli::main_with(lr_find::TOOL, || lr_find::run(args));
}
