//! The README's solver table is the registry's: regenerate it with `scoresde solvers` when a
//! solver is added or its description changes.

#[test]
fn readme_solver_table_is_generated_from_the_registry() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = scoresde::sampler::registry::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md's solver table differs from the registry: replace it with the output of `scoresde solvers`"
    );
    // Every registered solver has its row.
    for name in scoresde::sampler::SolverId::names() {
        assert!(readme.contains(&format!("| `{name}` |")), "{name} has no README row");
    }
}
