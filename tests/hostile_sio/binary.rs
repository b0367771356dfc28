//! `binary_attachments_are_refused`: Gru's events take no binary attachments. A packet that
//! announces one closes its connection before any attachment is buffered, so clients that
//! never authenticate cannot park megabytes of half-sent binary packets on the spear.

use std::time::Duration;

use crate::node::{rss_mib, sio, start};
use gru_testkit::sio::{SioClient, SioOptions};

const CLIENTS: usize = 20;
/// Attachment bytes each client tries to park (in frames under the 64 KiB message limit).
const FRAMES: usize = 64;
const FRAME: usize = 60 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_attachments_are_refused() {
    let cluster = start(&[]).await;
    let addr = sio(&cluster);
    let baseline = rss_mib(&cluster);

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        // Unauthenticated, as in the probe.
        let c = SioClient::connect_with(&addr, SioOptions::default())
            .await
            .expect("connect");
        // A packet announcing one attachment more than is ever sent: the server would keep
        // every frame while it waits for the last one.
        let placeholders: Vec<String> = (0..=FRAMES)
            .map(|n| format!(r#"{{"_placeholder":true,"num":{n}}}"#))
            .collect();
        c.emit_raw(&format!(
            r#"45{}-["msg",[{}]]"#,
            FRAMES + 1,
            placeholders.join(",")
        ));
        for _ in 0..FRAMES {
            c.send_binary(vec![0x5a; FRAME]);
        }
        clients.push(c);
    }
    let mut open = 0;
    for c in &mut clients {
        if !c.closed_within(Duration::from_secs(5)).await {
            open += 1;
        }
    }
    let after = rss_mib(&cluster);
    assert_eq!(
        open, 0,
        "every connection announcing an attachment is closed"
    );
    let parked = (CLIENTS * FRAMES * FRAME) as f64 / (1024.0 * 1024.0);
    assert!(
        after - baseline < 16.0,
        "memory grew {:.1} MiB (baseline {baseline:.1}, after {after:.1}); the clients sent \
         {parked:.0} MiB of attachments",
        after - baseline
    );

    // The spear still serves well-behaved clients.
    let fresh = crate::node::client(&cluster, 900, SioOptions::default()).await;
    let reply = fresh
        .call("join", &serde_json::json!({"groups": [1]}))
        .await
        .expect("join ack");
    assert_eq!(reply["success"], true, "{reply}");
}
