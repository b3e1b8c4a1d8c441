//! kvnet's man pages and shell completions, generated from the binaries' own clap
//! definitions, so `--help`, the man pages and the completions cannot disagree. The
//! output is checked in (contrib/man/, contrib/completions/) for the Debian package;
//! `tests/current.rs` fails when it is stale and `cargo run -p kvnet-docgen` rewrites it.
//!
//! A page is clap_mangen's sections (name, synopsis, description, options,
//! subcommands) followed by the sections of the command's `after_long_help`, which
//! is written as clap writes its own help:
//!
//! ```text
//! Files:                        a heading: .SH FILES
//!   /etc/kvnet/bridge.conf      an item: .TP, bold
//!           The ACL...          its description (indented further)
//!   0       Success.            an item and its description on one line
//! Text at the margin.           a paragraph
//! ```

#![forbid(unsafe_code)]

use clap::{Command, CommandFactory};
use roff::{Roff, bold, roman};
use std::path::PathBuf;

/// Where the generated files live, relative to the workspace root.
pub const MAN_DIR: &str = "contrib/man";
pub const COMPLETIONS_DIR: &str = "contrib/completions";

/// Every generated file: its path relative to the workspace root, and its contents.
pub fn files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut kvnet = kvnet_cli::Cli::command().disable_help_subcommand(true);
    kvnet.build();
    man_pages(&kvnet, "1", &mut out);
    for cmd in [
        kvnet_daemon::Args::command(),
        kvnet_attach::cli::BridgeHelper::command(),
        kvnet_attach::cli::Ifup::command(),
        kvnet_attach::cli::Ifdown::command(),
    ] {
        man_pages(&cmd, "8", &mut out);
    }
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "kvnet"),
        (Shell::Zsh, "_kvnet"),
        (Shell::Fish, "kvnet.fish"),
    ] {
        let mut text = Vec::new();
        kvnet_cli::completions(shell, &mut text);
        out.push((PathBuf::from(COMPLETIONS_DIR).join(file), text));
    }
    out
}

/// The page of `cmd` and, as git and cargo do, one per subcommand (kvnet-net-start(1)).
fn man_pages(cmd: &Command, section: &str, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, section, out);
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .manual("kvnet manual");
    // clap_mangen's sections, without VERSION (the title has it) and with the
    // after_long_help text as sections of their own instead of one called EXTRA.
    type Section = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;
    let mut sections: Vec<Section> = vec![
        clap_mangen::Man::render_title,
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
    ];
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        sections.push(clap_mangen::Man::render_options_section);
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        sections.push(clap_mangen::Man::render_subcommands_section);
    }
    // Each piece starts with roff's preamble (the apostrophe handling): keep the first.
    let preamble = Roff::new().render();
    let mut page = preamble.clone();
    let mut add = |piece: String| page.push_str(piece.strip_prefix(&preamble).unwrap_or(&piece));
    for render in sections {
        let mut piece = Vec::new();
        render(&man, &mut piece).expect("render to memory");
        add(String::from_utf8(piece).expect("UTF-8 in, UTF-8 out"));
    }
    if let Some(after) = cmd.get_after_long_help() {
        add(after_help(&after.to_string()).render());
    }
    out.push((
        PathBuf::from(MAN_DIR).join(man.get_filename()),
        page.into_bytes(),
    ));
}

/// The sections of an `after_long_help` text (see the crate's doc) as roff.
pub fn after_help(text: &str) -> Roff {
    let mut roff = Roff::new();
    // The item whose description is being gathered.
    let mut desc: Option<String> = None;
    let flush = |roff: &mut Roff, desc: &mut Option<String>| {
        if let Some(d) = desc.take() {
            roff.text([roman(d)]);
        }
    };
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let line = line.trim();
        if line.is_empty() {
            flush(&mut roff, &mut desc);
        } else if indent == 0 && line.ends_with(':') {
            flush(&mut roff, &mut desc);
            let heading = line.trim_end_matches(':').to_uppercase();
            roff.control("SH", [heading.as_str()]);
        } else if indent == 0 {
            flush(&mut roff, &mut desc);
            roff.control("PP", []).text([roman(line)]);
        } else if indent <= 2 {
            flush(&mut roff, &mut desc);
            let (term, rest) = line.split_once("  ").unwrap_or((line, ""));
            roff.control("TP", []).text([bold(term)]);
            desc = Some(rest.trim().to_string()).filter(|d| !d.is_empty());
        } else {
            let d = desc.get_or_insert_with(String::new);
            if !d.is_empty() {
                d.push(' ');
            }
            d.push_str(line);
        }
    }
    flush(&mut roff, &mut desc);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_help_becomes_sections_items_and_paragraphs() {
        let roff = after_help(
            "Files:\n  /etc/x\n          The x,\n          continued.\n\n\
             Exit status:\n  0       Success.\n  1       Failure,\n          \
             explained.\nA paragraph.\n",
        )
        .to_roff();
        assert_eq!(
            roff,
            ".SH FILES\n.TP\n\\fB/etc/x\\fR\nThe x, continued.\n.SH \"EXIT STATUS\"\n\
             .TP\n\\fB0\\fR\nSuccess.\n.TP\n\\fB1\\fR\nFailure, explained.\n.PP\nA paragraph.\n"
        );
    }
}
