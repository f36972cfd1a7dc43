fn main() {
    shared::cli::main(lm_train::TOOL, lm_train::run);
}
