//! A ticket request's query string, decoded as the HTTP edge does, through the issuer of both
//! endpoints. Nothing may panic, and an issued ticket must name a live spear.

#![no_main]

use gru::config::AuthSection;
use gru::api::http::QueryMap;
use gru::services::auth::AuthStore;
use gru::services::ticket::issue::{GRU_PARAMS, MODERN_PARAMS};
use gru::services::ticket::{SpearDirectory, SpearEntry, TicketIssuer, TicketParams};
use libfuzzer_sys::fuzz_target;

fn issuer() -> TicketIssuer {
    TicketIssuer::new(AuthStore::new(&AuthSection {
        business_secret: "fuzz-business-secret-0001".into(),
        spear_secret: "fuzz-spear-secret-00000001".into(),
        token_ttl_secs: 600,
        legacy_md5: true,
        enforce_groups: false,
        previous_business_secret: Some("fuzz-business-secret-0000".into()),
        previous_spear_secret: None,
        api_keys: Vec::new(),
        admin_keys: Vec::new(),
        gossip_keys: Vec::new(),
    }))
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let q = QueryMap::parse(query);
    let directory = SpearDirectory::default();
    directory.replace((4..7).map(|id| SpearEntry {
        id,
        sio: format!("127.0.0.1:{}", 31_000 + id),
        expires_at_ms: u64::MAX,
        load: id,
    }));
    let issuer = issuer();
    for (names, [uid, name, app, token]) in [
        (GRU_PARAMS, ["userId", "userName", "appType", "token1"]),
        (MODERN_PARAMS, ["user_id", "user_name", "app_type", "token"]),
    ] {
        let params = TicketParams {
            user_id: q.get(uid).cloned(),
            user_name: q.get(name).cloned(),
            app_type: q.get(app).cloned(),
            token1: q.get(token).cloned(),
            names,
        };
        if let Ok(ticket) = issuer.issue(&params, &directory, 1_764_000_000) {
            assert!((4..7).contains(&ticket.primary.id));
        }
    }
});
