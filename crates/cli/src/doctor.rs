//! kvnet doctor: the host's report of what stops guest traffic.

use crate::client::Client;
use crate::output::print_json;
use anyhow::Result;
use kvnet_api::request as req;

/// Print the report; exit with 2 when it found a problem.
pub fn run(c: &Client, network: Option<String>, json: bool) -> Result<()> {
    let network = network.map(|n| c.resolve(&n)).transpose()?;
    let report = c.call(req::Doctor { network })?;
    if json {
        print_json(&report)?;
    } else {
        print!("{}", doctor_text(&report));
    }
    if report.problems() > 0 {
        std::process::exit(2);
    }
    Ok(())
}

/// The doctor's report for people: problems, then notes, then what kvnet keeps in
/// other firewalls.
fn doctor_text(r: &kvnet_api::Report) -> String {
    let mut out = String::new();
    for f in r
        .findings
        .iter()
        .filter(|f| f.problem)
        .chain(r.findings.iter().filter(|f| !f.problem))
    {
        let kind = if f.problem { "PROBLEM" } else { "note" };
        let net = f
            .network
            .as_deref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{kind} {}{net}: {}\n",
            f.check.as_str(),
            f.culprit
        ));
        out.push_str(&format!("    {}\n    fix: {}\n", f.detail, f.fix));
    }
    if !r.kvnet_changes.is_empty() {
        out.push_str("kvnet keeps in other firewalls:\n");
        for c in &r.kvnet_changes {
            out.push_str(&format!("    {c}\n"));
        }
    }
    let n = r.problems();
    out.push_str(&match n {
        0 => "no problem found\n".to_string(),
        1 => "1 problem found\n".to_string(),
        n => format!("{n} problems found\n"),
    });
    out
}
