//! `--deflate` against the real `ringcast` binary: negotiation, inflation, compressed
//! publishers, the wire bytes per delivery, and plain subscribers in the same run.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Half the subscribers offer permessage-deflate, half do not; JSON payloads of 1 KiB.
/// Nothing is lost on either side, the compressed side takes fewer bytes on the wire than
/// the payload, the plain side more, and the publisher's compressed messages were inflated
/// by the server (the subscribers got every one, byte-identical headers).
#[test]
fn deflate_fanout_with_json_loses_nothing_and_shrinks_the_wire() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("deflate.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "40",
            "--rate",
            "300",
            "--size",
            "1024",
            "--payload",
            "json",
            "--deflate",
            "--deflate-subscribers",
            "50%",
            "--warmup",
            "300ms",
            "--duration",
            "2s",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let d = &v["delivery"];
    assert!(u(&d["expected"]) > 0);
    assert_eq!(u(&d["lost"]), 0, "{d}");
    assert_eq!(u(&d["delivered"]), u(&d["expected"]));
    assert_eq!(u(&d["foreign"]), 0);
    let z = &v["deflate"];
    assert_eq!(z["payload"], "json");
    assert_eq!(u(&z["subscribers"]["offered"]), 20, "{z}");
    assert_eq!(u(&z["subscribers"]["accepted"]), 20, "{z}");
    assert_eq!(u(&z["subscribers"]["declined"]), 0, "{z}");
    assert_eq!(u(&z["publishers"]["accepted"]), 1, "{z}");
    let answers = z["subscribers"]["answers"].as_object().expect("answers");
    assert!(
        answers
            .keys()
            .all(|a| a.contains("server_no_context_takeover")),
        "{z}"
    );
    // The publisher's messages went out compressed, smaller than their payload.
    let sent = &z["sent"];
    assert_eq!(u(&sent["compressed"]), u(&sent["messages"]));
    assert!(f(&sent["wire_over_payload"]) < 0.8, "{sent}");
    // Both kinds of subscriber received every message; only the deflate half got them
    // small.
    let (plain, comp) = (&z["received"]["plain"], &z["received"]["deflate"]);
    assert_eq!(u(&plain["messages"]), u(&comp["messages"]), "{z}");
    assert!(u(&comp["messages"]) > 0);
    assert_eq!(f(&comp["payload_bytes_per_delivery"]), 1024.0);
    assert_eq!(f(&plain["payload_bytes_per_delivery"]), 1024.0);
    assert!(f(&comp["wire_bytes_per_delivery"]) < 0.8 * 1024.0, "{comp}");
    assert!(f(&plain["wire_bytes_per_delivery"]) > 1024.0, "{plain}");
    // The whole run's figure lies between the two.
    let all = f(&v["io"]["wire_bytes_per_delivery"]);
    assert!(
        all > f(&comp["wire_bytes_per_delivery"]) && all < 1024.0,
        "{all}"
    );
    assert!(
        v["slo"]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["name"] == "deflate negotiated" && c["pass"] == true)
    );
    // Latency by second covers the window.
    let tl = &v["latency_timeline"];
    let counted: u64 = tl["count"].as_array().expect("counts").iter().map(u).sum();
    assert_eq!(counted, u(&d["delivered"]));
}

/// `ringcast.v1` events compressed (the server's cached compressed event frames), with a
/// smaller server window and client_no_context_takeover offered: the answer carries both,
/// and the events are valid and complete.
#[test]
fn deflate_v1_events_with_a_small_window() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("deflate-v1.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "10",
            "--rate",
            "200",
            "--size",
            "600",
            "--payload",
            "json",
            "--protocol",
            "ringcast.v1",
            "--deflate",
            "--deflate-no-context-takeover",
            "--deflate-server-window-bits",
            "10",
            "--warmup",
            "300ms",
            "--duration",
            "1s",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(u(&v["delivery"]["lost"]), 0);
    let z = &v["deflate"];
    let answers = z["subscribers"]["answers"].as_object().expect("answers");
    assert_eq!(answers.len(), 1, "{z}");
    let answer = answers.keys().next().expect("one answer");
    assert!(answer.contains("server_max_window_bits=10"), "{answer}");
    assert!(answer.contains("client_no_context_takeover"), "{answer}");
    let comp = &z["received"]["deflate"];
    assert!(u(&comp["messages"]) > 0);
    assert!(f(&comp["wire_over_payload"]) < 0.8, "{comp}");
    let ev = &v["reconnect"]["events"];
    assert_eq!(u(&ev["bad_events"]), 0, "{ev}");
    assert!(u(&ev["msgs"]) > 0);
}

/// A server that declines (`--deflate off`): the connections go on uncompressed and
/// deliver, but the run fails and says why — it did not measure what it was asked to.
#[test]
fn deflate_declined_fails_the_run_and_says_why() {
    let _g = serial();
    let srv = Server::start(&["--deflate", "off"]);
    let json = tmp("deflate-off.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "5",
            "--rate",
            "100",
            "--payload",
            "json",
            "--size",
            "512",
            "--deflate",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(u(&v["delivery"]["lost"]), 0);
    let z = &v["deflate"];
    assert_eq!(u(&z["subscribers"]["declined"]), 5, "{z}");
    assert_eq!(u(&z["received"]["deflate"]["messages"]), 0);
    assert!(u(&z["received"]["plain"]["messages"]) > 0);
    let w = why(&v);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("deflate negotiated:"), "{w:?}");
}
