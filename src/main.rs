use std::process::ExitCode;

use phm::cli;

fn main() -> ExitCode {
    let cli = cli::parse();
    cli::init_logging(cli.log_format, cli.verbose);
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
