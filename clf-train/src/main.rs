use clap::Parser;

fn main() {
    let args = clf_train::Args::parse_from(std::env::args_os());
    shared::cli::main_with(clf_train::TOOL, || clf_train::run(args));
}
