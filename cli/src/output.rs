//! What the CLI prints: aligned tables, human sizes, JSON.

use std::time::Duration;

use serde_json::Value;

use crate::api::{Attachment, SandboxVolume};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers and sizes.
    Right,
}

/// A table whose columns are as wide as their widest cell.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text: a header line and one line per row, columns
    /// two spaces apart, no trailing blanks.
    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .chain([self.columns[i].0.len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();

        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.columns.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Key/value lines with the values lined up (`volume get`).
pub fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

/// A size in MiB for people: `512 MiB`, `1.5 GiB`, `2 TiB`.
pub fn human_mib(mib: u64) -> String {
    human(mib as f64, &["MiB", "GiB", "TiB", "PiB", "EiB"])
}

/// A size in bytes for people: `512 B`, `300 MiB`, `1.07 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    human(
        bytes as f64,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
    )
}

/// Scales `value` by 1024 until it is below 1024 and prints it with at
/// most two decimals, trailing zeros dropped.
fn human(mut value: f64, units: &[&str]) -> String {
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {}", units[unit])
}

/// A duration for people: `850ms`, `12.3s`, `2m05s`, `1h02m`.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if duration.as_millis() >= 1000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// A volume's attachments as `sb1:/data(rw), sb2:/x(ro)`, or `-`.
pub fn attachments(attachments: &[Attachment]) -> String {
    join_or_dash(
        attachments
            .iter()
            .map(|a| format!("{}:{}({})", a.sandbox, a.mount, mode(a.read_only))),
    )
}

/// A sandbox's volumes as `data:/data(rw), ref:/ref(ro)`, or `-`.
pub fn sandbox_volumes(volumes: &[SandboxVolume]) -> String {
    join_or_dash(
        volumes
            .iter()
            .map(|v| format!("{}:{}({})", v.volume, v.mount, mode(v.read_only))),
    )
}

/// `ro` or `rw`.
pub fn mode(read_only: bool) -> &'static str {
    if read_only {
        "ro"
    } else {
        "rw"
    }
}

/// An optional text, or `-`.
pub fn or_dash(text: Option<&str>) -> String {
    match text {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => "-".to_owned(),
    }
}

/// An RFC 3339 time to the second, as tables and details show it
/// (`2026-12-03T10:00:00Z`: kilnd sends nanoseconds), or `-`. Text that is
/// not such a time is shown as it is.
pub fn time_or_dash(text: Option<&str>) -> String {
    use time::format_description::well_known::Rfc3339;
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return "-".to_owned();
    };
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| text.to_owned())
}

fn join_or_dash(items: impl Iterator<Item = String>) -> String {
    let joined: Vec<String> = items.collect();
    if joined.is_empty() {
        "-".to_owned()
    } else {
        joined.join(", ")
    }
}

/// Prints JSON as `--json` does: pretty, one value.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_second() {
        let t = |s| time_or_dash(Some(s));
        assert_eq!(t("2026-12-03T16:39:37.800120906Z"), "2026-12-03T16:39:37Z");
        assert_eq!(t("2026-12-03T10:00:00Z"), "2026-12-03T10:00:00Z");
        assert_eq!(
            t("2026-12-03T10:00:00.5+01:00"),
            "2026-12-03T10:00:00+01:00"
        );
        assert_eq!(t("yesterday"), "yesterday");
        assert_eq!(t(""), "-");
        assert_eq!(time_or_dash(None), "-");
    }

    #[test]
    fn tables_align_columns_and_trim_trailing_blanks() {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("SIZE", Align::Right),
            ("ATTACHMENTS", Align::Left),
        ]);
        table.row(vec!["data".into(), "1 GiB".into(), "sb1:/data(rw)".into()]);
        table.row(vec!["scratch-volume".into(), "512 MiB".into(), "-".into()]);
        assert_eq!(
            table.render(),
            "\
NAME               SIZE  ATTACHMENTS
data              1 GiB  sb1:/data(rw)
scratch-volume  512 MiB  -
"
        );
    }

    #[test]
    fn tables_count_characters_not_bytes() {
        let mut table = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        table.row(vec!["é".into(), "x".into()]);
        table.row(vec!["ab".into(), "y".into()]);
        assert_eq!(table.render(), "A   B\né   x\nab  y\n");
    }

    #[test]
    fn a_table_without_rows_is_its_header() {
        let table = Table::new(&[("ID", Align::Left), ("CREATED", Align::Left)]);
        assert_eq!(table.render(), "ID  CREATED\n");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_mib(512), "512 MiB");
        assert_eq!(human_mib(1024), "1 GiB");
        assert_eq!(human_mib(1536), "1.5 GiB");
        assert_eq!(human_mib(20480), "20 GiB");
        assert_eq!(human_mib(1024 * 1024), "1 TiB");
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(314_572_800), "300 MiB");
        assert_eq!(human_bytes(1_150_000_000), "1.07 GiB");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn attachments_show_sandbox_mount_and_mode() {
        let list = vec![
            Attachment {
                sandbox: "sb1".into(),
                mount: "/data".into(),
                read_only: false,
            },
            Attachment {
                sandbox: "sb2".into(),
                mount: "/ref".into(),
                read_only: true,
            },
        ];
        assert_eq!(attachments(&list), "sb1:/data(rw), sb2:/ref(ro)");
        assert_eq!(attachments(&[]), "-");
    }

    #[test]
    fn details_line_up_values() {
        let text = details(&[("name", "data".into()), ("attachments", "-".into())]);
        assert_eq!(text, "name:        data\nattachments: -\n");
    }
}
