//! `faultline report`: flags into a [`faultline::app::report::ReportRequest`], the
//! report rendered and written (a file written whole or not at all), its exit code
//! (3: bad input; 2: the store failed or the file could not be written).

use super::slo::{failed, print, StoreArgs};
use faultline::app::report::{self, ReportRequest};
use faultline::exit::ExitCode;
use faultline::report::Format;
use std::io::Read as _;
use std::path::PathBuf;

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// One self-contained HTML file (inline CSS and SVG, no script, no request).
    Html,
    /// Markdown, for a pull request, an issue or a wiki.
    Markdown,
}

/// Arguments of `faultline report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Run journals: files, directories (their *.json), or - for standard input.
    #[arg(value_name = "JOURNAL")]
    journals: Vec<String>,
    /// The format [default: from --output's extension (.md: markdown), else html].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write the report to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Link each trace id to a trace viewer: a template with {trace_id} (and
    /// {run_id}), e.g. http://localhost:16686/trace/{trace_id} [default: the
    /// settings' tracing.trace_url].
    #[arg(long, env = "FAULTLINE_TRACE_URL", value_name = "TEMPLATE")]
    trace_url: Option<String>,
    /// Also report the recorded runs started since: a duration ago (7d) or a time.
    #[arg(long, value_name = "TIME|DURATION")]
    since: Option<String>,
    /// Recorded runs started until (same forms as --since).
    #[arg(long, value_name = "TIME|DURATION")]
    until: Option<String>,
    /// Only recorded runs with this target label (k=v; repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// At most this many recorded runs, the newest (0: all).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Settings file (for tracing.trace_url).
    #[arg(long, env = "FAULTLINE_SETTINGS")]
    settings: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

fn format_of(a: &ReportArgs) -> Format {
    match a.format {
        Some(FormatArg::Html) => Format::Html,
        Some(FormatArg::Markdown) => Format::Markdown,
        None => a.output.as_deref().map_or(Format::Html, format_for),
    }
}

/// A report file's format by its extension: `.md`/`.markdown` is Markdown, else HTML.
pub fn format_for(path: &std::path::Path) -> Format {
    match path.extension().and_then(|x| x.to_str()) {
        Some("md" | "markdown") => Format::Markdown,
        _ => Format::Html,
    }
}

/// Run `faultline report`.
pub async fn report(a: ReportArgs) -> ExitCode {
    let format = format_of(&a);
    let stdin = if a.journals.iter().any(|j| j == "-") {
        let mut text = String::new();
        match std::io::stdin().read_to_string(&mut text) {
            Ok(_) => Some(text),
            Err(e) => {
                eprintln!("error: <stdin>: cannot read it: {e}");
                return ExitCode::InvalidInput;
            }
        }
    } else {
        None
    };
    let req = ReportRequest {
        journals: a.journals.clone(),
        store: a.store.request(),
        since: a.since.clone(),
        until: a.until.clone(),
        labels: a.labels.clone(),
        limit: a.limit,
        trace_url: a.trace_url.clone(),
        settings: a.settings.clone(),
        stdin,
    };
    let made = match report::gather(&req).await {
        Ok(g) => g,
        Err(e) => return failed(&e),
    };
    for s in &made.skipped {
        eprintln!("warning: not in the report: {s}");
    }
    let text = faultline::report::render(&made, format);
    match &a.output {
        Some(path) => match report::write(path, &text) {
            Ok(()) => {
                eprintln!(
                    "report on {} run(s) written to {}",
                    made.runs.len(),
                    path.display()
                );
                ExitCode::Success
            }
            Err(e) => {
                eprintln!("error: cannot write the report to {}: {e}", path.display());
                ExitCode::Failed
            }
        },
        None => {
            print(&text);
            ExitCode::Success
        }
    }
}
