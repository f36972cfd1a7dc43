fn main() {
    shared::cli::main("tokenize", tokenize::run);
}
