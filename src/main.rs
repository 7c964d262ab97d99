fn main() {
  std::process::exit(drctl::cli::main());
}
