//! The `kpl` binary: see `kpl --help`.

use std::io::Write;

fn main() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = std::io::stderr();
    let code = kpl_cli::main_with(std::env::args_os(), &mut stdin.lock(), &mut out, &mut err);
    let _ = out.flush();
    drop(out);
    std::process::exit(code);
}
