fn main() {
    shared::cli::main(lr_find::TOOL, lr_find::run);
}
