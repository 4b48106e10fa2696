//! Runs every golden vector against kpl-codec, each check as its own named test
//! (`<vector name> [<implementation>]`), so a failure names the vector.

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let vectors = match kpl_vectors::load_all().and_then(|mut v| {
        kpl_vectors::load_captured().map(|c| {
            v.extend(c);
            v
        })
    }) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot load the vectors: {e}");
            std::process::exit(2);
        }
    };
    let mut trials = Vec::new();
    for vector in vectors {
        for implementation in kpl_conformance::builtin::implementations(&vector) {
            let name = format!("{} [{implementation}]", vector.name);
            let vector = vector.clone();
            // The check runs inside the trial, so a panic fails this test only.
            trials.push(Trial::test(name, move || {
                kpl_conformance::builtin::check_all(&vector)
                    .into_iter()
                    .filter(|(i, _)| i == implementation)
                    .try_for_each(|(_, result)| result.map_err(Failed::from))
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
