fn read(path: &str) -> String {
    let full = format!("{}/{path}", crate::support::ROOT);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

#[test]
fn signals_doc_has_a_row_for_every_signal() {
    let doc = read("docs/signals.md");
    for sig in [
        "TERM, QUIT",
        "INT",
        "HUP",
        "USR1",
        "USR2",
        "WINCH",
        "TTIN",
        "TTOU",
        "CHLD",
    ] {
        let row = format!("| {sig} |");
        assert!(doc.contains(&row), "docs/signals.md has no row {row}");
    }
}

#[test]
fn readme_starts_with_the_two_commands() {
    let readme = read("README.md");
    let head: String = readme.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("cargo run --release"),
        "README must start with the serve command"
    );
    assert!(
        head.contains("cargo test --release"),
        "README must start with the test command"
    );
    // .ci/run takes the command from the README's line marked "run the tests".
    let marked = head.lines().find(|l| l.contains("# run the tests"));
    assert!(
        marked.is_some_and(|l| l.starts_with("cargo test --release")),
        "the README's test command is marked '# run the tests'"
    );
    let ci = read(".ci/run");
    assert!(
        ci.contains("git clone") && ci.contains("# run the tests"),
        ".ci/run clones the repository and runs the README's test command"
    );
}
