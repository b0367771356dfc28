//! Gru's original token scheme, kept only for existing deployments (`auth.legacy_md5`):
//! `gen(source, salt) = lowercase hex(MD5(source + "_" + salt))`, no expiry.
//!
//! `token1 = gen(userId_userName_appType, salt_toticket)` is made by the business system;
//! `token2 = gen(userId_userName_appType_token1, salt_tospear)` by ticket. gru uses
//! `auth.business_secret` as `salt_toticket` and `auth.spear_secret` as `salt_tospear`.

use md5::{Digest, Md5};

/// `lowercase hex(MD5(source + "_" + salt))`.
pub fn gen(source: &str, salt: &str) -> String {
    let digest = Md5::digest(format!("{source}_{salt}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The legacy token1 of a user.
pub fn token1(uid: u64, name: &str, app: &str, salt_toticket: &str) -> String {
    gen(&format!("{uid}_{name}_{app}"), salt_toticket)
}

/// The legacy token2 of a user, derived from their token1.
pub fn token2(uid: u64, name: &str, app: &str, token1: &str, salt_tospear: &str) -> String {
    gen(&format!("{uid}_{name}_{app}_{token1}"), salt_tospear)
}

/// Compares two tokens in constant time.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_original_check_value() {
        // From the comments of Gru's own code (wire API §3).
        assert_eq!(gen("123456", "salt"), "397a79aca9daa9aa6b06dfd834e23c81");
    }

    #[test]
    fn token2_depends_on_token1() {
        let t1 = token1(123, "Zhang", "web", "to-ticket");
        assert_eq!(t1, gen("123_Zhang_web", "to-ticket"));
        let t2 = token2(123, "Zhang", "web", &t1, "to-spear");
        assert_eq!(t2, gen(&format!("123_Zhang_web_{t1}"), "to-spear"));
        assert!(same(&t2, &t2.clone()));
        assert!(!same(&t2, &t1));
    }
}
