fn main() {
    shared::cli::main("numericalize", numericalize::run);
}
