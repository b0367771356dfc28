//! Every body a business server can send to the server API's publish routes, on any bytes:
//! decoding never panics; an accepted body never asks for more than `max_batch` messages or a
//! content over `max_content`; and the drafts of one message share one content, never a copy
//! per recipient (the amplification `server_api_amplification` guards end to end).

#![no_main]

use std::sync::Arc;

use gru::api::http::{batch_drafts, publish_drafts, ServerApiLimits};
use gru::config::ServerApiSection;
use gru::services::publish::ContentLimit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let section = ServerApiSection {
        max_batch: 50,
        ..ServerApiSection::default()
    };
    let limits = ServerApiLimits::new(&section, ContentLimit::new(1024));
    if let Ok(drafts) = publish_drafts(data, &limits, "fuzz") {
        assert!(!drafts.is_empty() && drafts.len() <= 50, "{} drafts", drafts.len());
        for d in &drafts {
            assert!(d.content().len() <= 1024);
            assert!(Arc::ptr_eq(d.content(), drafts[0].content()), "a content copied");
        }
    }
    if let Ok(groups) = batch_drafts(data, &limits, "fuzz") {
        let total: usize = groups.iter().map(Vec::len).sum();
        assert!(total <= 50, "{total} drafts in a batch");
        for group in &groups {
            for d in group {
                assert!(Arc::ptr_eq(d.content(), group[0].content()), "a content copied");
            }
        }
    }
});
