fn main() {
    shared::cli::main(bias_audit::TOOL, bias_audit::run);
}
