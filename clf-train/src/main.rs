fn main() {
    shared::cli::main(clf_train::TOOL, clf_train::run);
}
