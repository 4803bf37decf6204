//! A player's wire carries events in the order they happened: media queued
//! for a player that cannot keep up goes out before the unpublish notice
//! that came after it, never behind it.

use std::time::Duration;

use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::play::PlayOptions;
use ringcast_tests::rtmp::{Pace, RtmpPlayer, RtmpPublisher};
use ringcast_tests::server::Server;

#[test]
fn queued_media_reaches_a_slow_player_before_the_unpublish_notice() {
    let server = Server::start("");
    let url = server.rtmp_url("order");
    let tags = fixture_tags();
    let mut publisher = RtmpPublisher::connect(&url).expect("publish");
    // a player with a tiny receive window that does not read for a while:
    // what the publisher sends next waits in the player's queue
    let mut player = RtmpPlayer::connect(&url, Some(4096)).expect("player connects");
    publisher
        .publish(&tags, Pace::Fast, 1)
        .expect("publish the fixture");
    let last_sent = *publisher.sent.last().expect("something was sent");
    let sent = publisher.sent.len();
    publisher.close();
    assert!(
        server.wait_for_log(Duration::from_secs(5), |l| l.contains("unpublished")
            || l.contains("publish ended")),
        "the unpublish was not seen; log:\n{}",
        server.log_tail(10)
    );
    // the notice is queued behind the media by now
    std::thread::sleep(Duration::from_millis(500));

    let mut opts = PlayOptions::until_idle(Duration::from_secs(20), Duration::from_secs(5));
    opts.stop_on_unpublish = true;
    let res = player.collect("slow", opts);
    let last_got = res.records.last().copied();
    eprintln!(
        "publisher sent {sent} messages; the player got {} before the notice; {}",
        res.records.len(),
        res.summary()
    );
    assert!(
        res.statuses.iter().any(|s| s == "<unpublished>"),
        "the player was never told the stream stopped: {}",
        res.summary()
    );
    assert!(
        last_got.is_some_and(|r| r.same_payload(&last_sent)),
        "the last message before the unpublish notice must be the publisher's last \
         ({last_sent:?}), got {last_got:?}: queued media went out after the notice"
    );
}
