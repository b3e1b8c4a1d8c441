//! Tables laid out the way virsh prints them: a leading space, columns padded to their
//! widest cell and three spaces apart, a dashed rule under the header.

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        s.trim_end().to_string()
    };
    let head = line(header.to_vec());
    let total: usize = widths.iter().sum::<usize>() + 3 * widths.len();
    let mut out = format!("{head}\n{}\n", "-".repeat(total));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_virsh_layout() {
        let rows = vec![vec![
            "default".to_string(),
            "active".into(),
            "yes".into(),
            "yes".into(),
        ]];
        let t = super::render(&["Name", "State", "Autostart", "Persistent"], &rows);
        assert_eq!(
            t,
            " Name      State    Autostart   Persistent\n\
             --------------------------------------------\n \
             default   active   yes         yes\n\n"
        );
    }
}
