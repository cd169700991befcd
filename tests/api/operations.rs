//! Operator routes about the node: its entity kinds, snapshots on demand, and the cluster
//! routes on a node that runs alone.

use crate::helpers::{OPERATOR_TOKEN, assert_problem, ok, send, spawn_app};
use serde_json::json;

#[tokio::test]
async fn actors_snapshots_and_the_cluster_routes_of_a_lone_node() {
    let app = spawn_app().await;
    ok(app.put_stock("tee", json!({"available": 10})).await).await;
    for o in ["o1", "o2", "o3"] {
        ok(app.reserve("tee", o, 1).await).await;
    }
    let actors = ok(send(&app, "GET", "/api/v1/admin/actors", OPERATOR_TOKEN, None).await).await;
    let kinds = actors["kinds"].as_array().unwrap();
    let sku = kinds
        .iter()
        .find(|k| k["kind"] == "sku")
        .expect("the sku kind");
    assert_eq!(sku["active"], 1);
    assert!(sku["mailbox_depth_p99"].is_u64() && sku["restarts"] == 0);
    assert_eq!(kinds.len(), 9, "every kind: {actors}");

    let inspected = ok(app.inspect("sku", "tee").await).await;
    assert_eq!(
        (
            inspected["seq"].as_u64(),
            inspected["snapshot_seq"].as_u64()
        ),
        (Some(4), Some(0))
    );
    let done = ok(send(
        &app,
        "POST",
        "/api/v1/admin/snapshots",
        OPERATOR_TOKEN,
        None,
    )
    .await)
    .await;
    assert_eq!(done["snapshotted"], 1);
    let inspected = ok(app.inspect("sku", "tee").await).await;
    assert_eq!(
        inspected["snapshot_seq"], 4,
        "the snapshot covers every event"
    );
    let again = ok(send(
        &app,
        "POST",
        "/api/v1/admin/snapshots",
        OPERATOR_TOKEN,
        None,
    )
    .await)
    .await;
    assert_eq!(again["snapshotted"], 0, "nothing new since");

    let alone = send(&app, "GET", "/api/v1/admin/cluster", OPERATOR_TOKEN, None).await;
    assert_problem(alone, 404, "not_clustered").await;
    let alone = send(
        &app,
        "GET",
        "/api/v1/admin/cluster/shards",
        OPERATOR_TOKEN,
        None,
    )
    .await;
    assert_problem(alone, 404, "not_clustered").await;
    // A node name that is not UTF-8 is a problem too, not axum's text/plain
    let path = "/api/v1/admin/cluster/nodes/%FF/drain";
    let bad = send(&app, "POST", path, OPERATOR_TOKEN, None).await;
    assert_problem(bad, 400, "invalid_path").await;
    let (_, customer, _) = app.customer("ops@example.com").await;
    for (method, path) in [
        ("GET", "/api/v1/admin/actors"),
        ("POST", "/api/v1/admin/snapshots"),
        ("GET", "/api/v1/admin/cluster"),
    ] {
        assert_problem(
            send(&app, method, path, &customer, None).await,
            403,
            "forbidden",
        )
        .await;
    }
    app.stop().await;
}
