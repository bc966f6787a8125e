//! Rules of the code's shape that the compiler cannot check. The sealed `entity::Db` keeps other crates out of a
//! `TenantTxn`, but they hold the pool: nothing but `entity` may bind a transaction to a tenant, or the "tenant data
//! only through entity functions" rule would rest on review again.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_entity_binds_a_transaction_to_a_tenant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for product_crate in ["api", "common", "testio", "worker"] {
        rust_files(&root.join(product_crate).join("src"), &mut files);
    }
    assert!(files.len() > 20, "the source tree was not found from {}", root.display());
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("app.tenant_id"))
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(offenders.is_empty(), "only entity::TenantTxn may set app.tenant_id; found in {offenders:?}");
    let tenancy = std::fs::read_to_string(root.join("entity/src/tenancy.rs")).unwrap();
    assert!(tenancy.contains("set_config('app.tenant_id', $1, true)"), "the rule's anchor moved; update this test");
}
