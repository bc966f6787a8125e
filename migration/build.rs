//! Hashes the migration sources into `MIGRATION_SOURCE_FINGERPRINT` (see `SCHEMA_FINGERPRINT`).
use std::hash::{Hash, Hasher};

fn main() {
    let mut files: Vec<_> =
        std::fs::read_dir("src").map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('m') || name == "sql.rs" {
            name.hash(&mut hasher);
            std::fs::read(path).unwrap_or_default().hash(&mut hasher);
        }
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rustc-env=MIGRATION_SOURCE_FINGERPRINT={:016x}", hasher.finish());
}
