//! Docker's tables (`ps`, `images`, `network ls`), laid out as its Go tabwriter does
//! (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`): each column as wide as its widest cell plus
//! three spaces, at least ten; the last column unpadded, no trailing spaces.

pub fn render<R: AsRef<[String]>>(rows: &[R]) -> String {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![10; n];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.as_ref().iter().enumerate() {
            line.push_str(cell);
            if i + 1 < n {
                line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_as_dockers_tabwriter() {
        let rows = [
            ["NAME", "IMAGE ID", "X"].map(String::from),
            ["a-rather-long-name", "1", "z"].map(String::from),
        ];
        assert_eq!(
            super::render(&rows),
            "NAME                 IMAGE ID   X\na-rather-long-name   1          z\n"
        );
    }
}
