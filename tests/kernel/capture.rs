//! af_packet against the real kernel: rings on veth pairs in fresh
//! namespaces, frames sent with `FrameSender`, captured and compared.

use std::time::{Duration, Instant};

use af_packet::{CaptureRing, Direction, FrameSender, Interface, InterfaceRole, RingConfig, RingSet};
use testbed::{mixed_sizes, sequence_of, FrameSpec};

use crate::netns::{privileged, veth_pair, NetNs};

/// Captures on `ring_if` in `ns` until `expected` test frames arrived or
/// `timeout` passed; returns (sequence, direction, bytes) of each.
fn capture_frames(ring: CaptureRing, expected: usize, timeout: Duration) -> Vec<(u32, Direction, Vec<u8>)> {
    let mut set = RingSet::new().unwrap();
    set.add(ring).unwrap();
    let mut frames = vec![];
    let deadline = Instant::now() + timeout;
    while frames.len() < expected && Instant::now() < deadline {
        set.poll(50, 16, |_, _, packet| {
            if let Some(seq) = sequence_of(packet.data()) {
                frames.push((seq, packet.direction(), packet.data().to_vec()));
            }
        })
        .unwrap();
    }
    frames
}

#[test]
fn veth_pair_captures_every_frame_of_mixed_sizes_byte_for_byte() {
    if !privileged("veth_pair_captures_every_frame_of_mixed_sizes_byte_for_byte") {
        return;
    }
    let a = NetNs::new("mixa");
    let b = NetNs::new("mixb");
    veth_pair(&a, "va", &b, "vb");
    let sizes = mixed_sizes(400, 1514);
    let sent: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            FrameSpec {
                frame_len: len,
                ..FrameSpec::default()
            }
            .build(i as u32)
        })
        .collect();
    let expected = sent.len();

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = b.spawn(move || {
        let ring = CaptureRing::open(
            &Interface::by_name("vb").unwrap(),
            &RingConfig::for_role(InterfaceRole::ContainerVeth),
        )
        .unwrap();
        ready_tx.send(()).unwrap();
        capture_frames(ring, expected, Duration::from_secs(10))
    });
    ready_rx.recv().unwrap();
    let to_send = sent.clone();
    a.spawn(move || {
        let sender = FrameSender::open(&Interface::by_name("va").unwrap()).unwrap();
        let refs: Vec<&[u8]> = to_send.iter().map(Vec::as_slice).collect();
        assert_eq!(sender.send(&refs).unwrap(), refs.len());
    })
    .join()
    .unwrap();
    let captured = receiver.join().unwrap();
    assert_eq!(captured.len(), expected, "every frame captured exactly once");
    for (i, (seq, direction, bytes)) in captured.iter().enumerate() {
        assert_eq!(*seq as usize, i, "in order");
        assert_eq!(*direction, Direction::Inbound);
        assert_eq!(bytes, &sent[i], "frame {i} bytes identical");
    }
}
