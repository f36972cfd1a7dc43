fn main() {
    shared::cli::main("plot", plot::run);
}
