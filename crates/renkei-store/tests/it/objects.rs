//! File bytes on local disk and on a real S3-compatible server (moto, started by the test):
//! staged uploads that resume after an interruption, commit into the store, whole and ranged
//! reads, deletion.

use futures_util::StreamExt;
use renkei_store::objects::{ObjectStoreConfig, Objects};
use renkei_store::testing::S3Server;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn read(objects: &Objects, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let mut s = objects.get(key, range).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn round_trip(objects: &Objects) {
    // 20 MiB: more than two of the 8 MiB parts sent to S3.
    let data = pattern(20 * 1024 * 1024 + 123);
    let cut = 7 * 1024 * 1024 + 5;

    // First request: some bytes arrive and are confirmed.
    let mut w = objects.append_staged("up1", 0).await.unwrap();
    w.write(&data[..cut]).await.unwrap();
    assert_eq!(w.finish().await.unwrap(), cut as u64);
    // A second request wrote a tail that was never confirmed (the server died first) ...
    let mut w = objects.append_staged("up1", cut as u64).await.unwrap();
    w.write(b"unconfirmed garbage").await.unwrap();
    w.finish().await.unwrap();
    // ... so the client resumes at the confirmed offset, and the garbage is gone.
    let mut w = objects.append_staged("up1", cut as u64).await.unwrap();
    for chunk in data[cut..].chunks(1 << 20) {
        w.write(chunk).await.unwrap();
    }
    w.finish().await.unwrap();
    // Asking for an offset past what was staged is an error, not a hole.
    assert!(
        objects
            .append_staged("up1", data.len() as u64 + 10)
            .await
            .is_err()
    );

    objects.commit_staged("up1", "box/abc").await.unwrap();
    assert!(objects.exists("box/abc").await.unwrap());
    assert!(read(objects, "box/abc", None).await == data);
    assert_eq!(
        read(objects, "box/abc", Some(1000..1100)).await,
        data[1000..1100].to_vec()
    );
    assert_eq!(objects.get_all("box/abc").await.unwrap().len(), data.len());

    objects.put("box/small", b"hello".to_vec()).await.unwrap();
    assert_eq!(read(objects, "box/small", None).await, b"hello");

    objects.delete("box/abc").await.unwrap();
    assert!(!objects.exists("box/abc").await.unwrap());
    // Deleting again (a retried expiry) is fine; reading is not found.
    objects.delete("box/abc").await.unwrap();
    assert!(matches!(
        objects.get("box/abc", None).await.err(),
        Some(renkei_store::StoreError::NotFound)
    ));
    // A cancelled upload leaves nothing staged.
    let mut w = objects.append_staged("up2", 0).await.unwrap();
    w.write(b"abc").await.unwrap();
    w.finish().await.unwrap();
    objects.discard_staged("up2").await.unwrap();
    objects.discard_staged("up2").await.unwrap();
}

#[tokio::test]
async fn local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(
        &ObjectStoreConfig {
            url: format!("file://{}", dir.path().join("files").display()),
            ..Default::default()
        },
        &dir.path().join("uploads"),
    )
    .unwrap();
    round_trip(&objects).await;
    // Nothing left in staging after commit and discard.
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
#[ignore = "needs moto (pip install 'moto[server]'): pass --run-ignored all"]
async fn s3_compatible_server() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = server.bucket("renkei-objects").await;
    let objects = Objects::open(&config, &dir.path().join("uploads")).unwrap();
    assert!(objects.describe().starts_with("S3"));
    round_trip(&objects).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn bad_configuration_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = Objects::open(
        &ObjectStoreConfig {
            url: "s3://".into(),
            ..Default::default()
        },
        dir.path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("バケット名"), "{e}");
}
