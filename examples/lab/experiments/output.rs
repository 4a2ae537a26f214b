//! What an experiment writes: [`Out`] collects the markdown report, the CSV files of its
//! [`Table`]s, its [`Figure`]s and the wrong answers met while measuring, and writes them all into
//! the output folder at the end.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{ExpOptions, Experiment};
use crate::cli::cores;
use crate::plot::{Series, XAxis, line_chart};
use crate::report::{cpu_model, utc_now};

/// A table: written into the markdown report and as `<id>.csv`.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// File stem of the CSV file.
    pub id: String,
    /// Column headers.
    pub header: Vec<String>,
    /// Rows of cells (already formatted; the CSV holds the same text).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(id: &str, header: &[&str]) -> Table {
        Table {
            id: id.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// The table in GitHub markdown.
    pub fn markdown(&self) -> String {
        let mut md = format!("| {} |\n", self.header.join(" | "));
        let _ = writeln!(md, "|{}", " --- |".repeat(self.header.len()));
        for row in &self.rows {
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
        md
    }

    /// The table as CSV (cells quoted where they contain a comma or a quote).
    pub fn csv(&self) -> String {
        let line = |cells: &[String]| {
            cells
                .iter()
                .map(|c| {
                    if c.contains([',', '"', '\n']) {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut csv = line(&self.header) + "\n";
        for row in &self.rows {
            csv += &line(row);
            csv.push('\n');
        }
        csv
    }
}

/// One SVG line chart over categorical x values.
pub struct Figure {
    /// File name of the SVG, inside the output folder.
    pub file: String,
    /// Title (also the image's alt text in the report).
    pub title: String,
    /// The x values, in order.
    pub labels: Vec<String>,
    /// The lines; a point's x is an index into `labels`.
    pub series: Vec<Series>,
    /// What the x axis shows.
    pub x_desc: String,
    /// What the y axis shows.
    pub y_desc: String,
    /// x from which thread counts are oversubscribed, if the x axis is threads.
    pub shade_from: Option<f64>,
}

/// The report being written.
pub struct Out {
    dir: PathBuf,
    md: String,
    files: Vec<(String, String)>,
    /// Figures: file name, title and what to draw.
    figures: Vec<Figure>,
    violations: Vec<String>,
    /// Measurements that could not be taken (reported, and exit status 2).
    errors: Vec<String>,
}

impl Out {
    /// An empty report for `options`, headed by the experiment's name, `command`, the machine and
    /// how cells are measured.
    pub fn new(options: &ExpOptions, command: String) -> Out {
        let mut md = String::new();
        let cells = if options.experiment == Experiment::Bulk {
            format!(
                "Cells: one thread; median throughput over at least {} run(s) of each path (small \
                 batches get more, see below); every ratio compares two paths measured in the \
                 same process.",
                options.runs
            )
        } else {
            format!(
                "Cells: {} ms per run, {} run(s) (median throughput; counters over all runs). \
                 Thread counts marked † exceed the machine's hardware threads (oversubscribed).",
                options.duration.as_millis(),
                options.runs
            )
        };
        let _ = writeln!(
            md,
            "# lab {}{}\n\nCommand: `{command}`  \nMachine: {} hardware threads, {}; {} UTC.  \n\
             {cells}\n",
            options.experiment.name(),
            if options.quick {
                " (--quick: toy sizes, not for quoting)"
            } else {
                ""
            },
            cores(),
            cpu_model(),
            utc_now(),
        );
        Out {
            dir: options.out.clone(),
            md,
            files: Vec::new(),
            figures: Vec::new(),
            violations: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Appends a paragraph (or any markdown) and a line break to the report.
    pub fn text(&mut self, text: &str) {
        self.md.push_str(text);
        self.md.push('\n');
    }

    /// Appends `table` to the report and writes it as `<id>.csv`.
    pub fn table(&mut self, table: &Table) {
        let _ = writeln!(self.md, "{}\n(`{}.csv`)\n", table.markdown(), table.id);
        self.files.push((format!("{}.csv", table.id), table.csv()));
    }

    /// Links `figure` from the report and draws it into its SVG file.
    pub fn figure(&mut self, figure: Figure) {
        let _ = writeln!(self.md, "![{}]({})\n", figure.title, figure.file);
        self.figures.push(figure);
    }

    /// Records a wrong answer (printed now, listed in the report).
    pub fn violation(&mut self, what: String) {
        eprintln!("WRONG ANSWER: {what}");
        self.violations.push(what);
    }

    /// Records a measurement that could not be taken (the experiment then exits with status 2).
    pub fn error(&mut self, what: String) {
        self.errors.push(what);
    }

    /// The wrong answers recorded so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// The measurements that could not be taken.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Writes the figures, the CSV files and `report.md` (with the wrong answers listed at its end)
    /// into the output folder.
    pub fn finish(mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        for f in &self.figures {
            line_chart(
                &self.dir.join(&f.file),
                &f.title,
                &f.series,
                XAxis::Categories(&f.labels),
                &f.x_desc,
                &f.y_desc,
                f.shade_from,
            )?;
        }
        if !self.violations.is_empty() {
            self.md += "\n## Wrong answers\n\n";
            for v in &self.violations {
                let _ = writeln!(self.md, "- {v}");
            }
        }
        self.files.push(("report.md".into(), self.md.clone()));
        for (name, text) in &self.files {
            let path = self.dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_markdown_and_csv() {
        let mut t = Table::new("t", &["a", "b"]);
        t.rows.push(vec!["1".into(), "x,y".into()]);
        assert_eq!(t.markdown(), "| a | b |\n| --- | --- |\n| 1 | x,y |\n");
        assert_eq!(t.csv(), "a,b\n1,\"x,y\"\n");
    }
}
