use clap::Parser;

fn main() {
    let args = bias_audit::Args::parse_from(std::env::args_os());
    shared::cli::main_with(bias_audit::TOOL, || bias_audit::run(args));
}
