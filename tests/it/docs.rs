const SIGNALS_MD: &str = include_str!("../../docs/signals.md");

#[test]
fn signals_doc_has_a_row_for_every_signal() {
    for sig in ["TERM, QUIT", "INT", "HUP", "USR1", "USR2", "WINCH", "TTIN", "TTOU", "CHLD"] {
        let row = format!("| {sig} |");
        assert!(SIGNALS_MD.contains(&row), "docs/signals.md has no row {row}");
    }
}

#[test]
fn readme_starts_with_the_two_commands() {
    let readme = include_str!("../../README.md");
    let head: String = readme.lines().take(15).collect::<Vec<_>>().join("\n");
    assert!(head.contains("cargo run --release"), "README must start with the serve command");
    assert!(head.contains("cargo test --release"), "README must start with the test command");
}
