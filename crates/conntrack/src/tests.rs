//! Unit tests on crafted ctnetlink messages: MASQUERADE, DNAT and ICMP echo
//! NEW events, DESTROY, UPDATE and dump entries, entries without NAT, their
//! conversion into the dedup's NAT table, the watcher's handling of a
//! datagram (queue, counters, dump end and dump errors), and malformed or
//! truncated bytes, which must give errors and never panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use flow::{parse_frame, Endpoint, FlowHasher, FlowTuple, NatBindings};

use crate::craft::{self, Attr, Tuple};
use crate::message::*;
use crate::watcher::{ConntrackError, ConntrackWatcher, WatcherCounters};
use crate::{NatBinding, NatEvent, NatKind};

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ep(a: [u8; 4], port: u16) -> Endpoint {
    Endpoint { addr: v4(a), port }
}

fn tcp_tuple(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Tuple {
    Tuple {
        protocol: 6,
        src: v4(src),
        dst: v4(dst),
        ports: Some((sport, dport)),
        icmp: None,
    }
}

fn flow(protocol: u8, src: Endpoint, dst: Endpoint) -> FlowTuple {
    FlowTuple { protocol, src, dst }
}

const NEW_FLAGS: u16 = NLM_F_CREATE | NLM_F_EXCL;
const CONFIRMED: u32 = 1 << 3;

/// The only message of `bytes`, decoded.
fn decode(bytes: &[u8]) -> Result<Option<Conntrack>, ParseError> {
    let mut all = messages(bytes);
    let message = all.next().expect("one message")?;
    assert!(all.next().is_none(), "exactly one message");
    parse_conntrack(&message)
}

fn masquerade_new() -> Vec<u8> {
    craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &tcp_tuple([172, 17, 0, 2], 40000, [198, 18, 0, 1], 5005),
        &tcp_tuple([198, 18, 0, 1], 5005, [198, 18, 0, 2], 40000),
        CONFIRMED | IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE,
        0xdead_beef,
    )
}

fn dnat_new() -> Vec<u8> {
    craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &tcp_tuple([198, 18, 0, 1], 5555, [198, 18, 0, 2], 8080),
        &tcp_tuple([172, 17, 0, 2], 80, [198, 18, 0, 1], 5555),
        CONFIRMED | IPS_DST_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE,
        7,
    )
}

/// Learns `binding` into a NAT table and checks that the public and the
/// container tuple of both directions find it, oriented as the packet.
fn check_lookups(binding: &NatBinding) {
    let nat = NatBindings::new(1024, FlowHasher::with_seeds([3, 1, 4, 1]));
    let translation = binding.to_translation();
    assert!(nat.learn(translation, 1));
    for (tuple, expected) in [
        (binding.public, translation),
        (binding.container, translation),
        (binding.public.reversed(), translation.reversed()),
        (binding.container.reversed(), translation.reversed()),
    ] {
        let hash = nat.hasher().symmetric(&tuple);
        let found = nat.lookup(&tuple, hash).unwrap_or_else(|| panic!("{tuple} not found"));
        assert_eq!(found, expected, "lookup of {tuple}");
    }
    // The same translation from a DESTROY or a dump is not new.
    assert!(!nat.learn(translation, 2));
    let stranger = flow(6, ep([10, 0, 0, 1], 1), ep([10, 0, 0, 2], 2));
    assert!(nat.lookup(&stranger, nat.hasher().symmetric(&stranger)).is_none());
}

#[test]
fn masquerade_tcp_new_binds_container_to_public() {
    let entry = decode(&masquerade_new()).unwrap().unwrap();
    assert_eq!(entry.kind, CtKind::New);
    assert_eq!(entry.family, 2);
    assert_eq!(entry.id, Some(0xdead_beef));
    assert_eq!(entry.status.map(|s| s & IPS_SRC_NAT), Some(IPS_SRC_NAT));
    assert_eq!(entry.orig.src_port, Some(40000));
    let Some(NatEvent::Bound(binding)) = NatEvent::of(&entry) else {
        panic!("not bound: {entry:?}");
    };
    assert_eq!(binding.kind, NatKind::Source);
    assert_eq!(
        binding.container,
        flow(6, ep([172, 17, 0, 2], 40000), ep([198, 18, 0, 1], 5005))
    );
    assert_eq!(
        binding.public,
        flow(6, ep([198, 18, 0, 2], 40000), ep([198, 18, 0, 1], 5005))
    );
    assert_eq!(binding.id, Some(0xdead_beef));
    let translation = binding.to_translation();
    assert_eq!(
        (translation.public, translation.container),
        (binding.public, binding.container)
    );
    check_lookups(&binding);
}

#[test]
fn dnat_tcp_new_binds_published_port_to_container() {
    let entry = decode(&dnat_new()).unwrap().unwrap();
    assert_eq!(entry.kind, CtKind::New);
    let Some(NatEvent::Bound(binding)) = NatEvent::of(&entry) else {
        panic!("not bound: {entry:?}");
    };
    assert_eq!(binding.kind, NatKind::Destination);
    assert_eq!(
        binding.public,
        flow(6, ep([198, 18, 0, 1], 5555), ep([198, 18, 0, 2], 8080))
    );
    assert_eq!(
        binding.container,
        flow(6, ep([198, 18, 0, 1], 5555), ep([172, 17, 0, 2], 80))
    );
    check_lookups(&binding);
}

#[test]
fn dnat_with_snat_is_both_and_public_side_opened_it() {
    let bytes = craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &tcp_tuple([198, 18, 0, 1], 5555, [198, 18, 0, 2], 8080),
        &tcp_tuple([172, 17, 0, 2], 80, [172, 17, 0, 1], 5555),
        IPS_DST_NAT | IPS_SRC_NAT,
        8,
    );
    let binding = NatBinding::of(&decode(&bytes).unwrap().unwrap()).unwrap();
    assert_eq!(binding.kind, NatKind::Both);
    assert_eq!(
        binding.public,
        flow(6, ep([198, 18, 0, 1], 5555), ep([198, 18, 0, 2], 8080))
    );
    assert_eq!(
        binding.container,
        flow(6, ep([172, 17, 0, 1], 5555), ep([172, 17, 0, 2], 80))
    );
    check_lookups(&binding);
}

#[test]
fn icmp_echo_masquerade_uses_the_identifier_as_flow_tuple_of_does() {
    // The seed echo request: 172.17.0.3 -> 172.17.0.2, as a packet.
    let packet = parse_frame(flow::fuzzing::seeds::ICMP_ECHO, None).unwrap();
    let seen = FlowTuple::of(&packet).unwrap();
    let id = seen.src.port;
    let echo = |src, dst, id, icmp_type| Tuple {
        protocol: 1,
        src: v4(src),
        dst: v4(dst),
        ports: None,
        icmp: Some((id, icmp_type, 0)),
    };
    // Conntrack's view of that packet (no NAT) gives the same tuple.
    let plain = craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &echo([172, 17, 0, 3], [172, 17, 0, 2], id, 8),
        &echo([172, 17, 0, 2], [172, 17, 0, 3], id, 0),
        CONFIRMED,
        1,
    );
    let entry = decode(&plain).unwrap().unwrap();
    assert_eq!(entry.orig.icmp_type, Some(8));
    assert_eq!(entry.reply.icmp_type, Some(0));
    assert_eq!(entry.orig.flow_tuple(), seen);
    assert_eq!(NatEvent::of(&entry), None, "no NAT, no binding");
    // MASQUERADE out of the uplink, which also rewrote the identifier.
    let masqueraded = craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &echo([172, 17, 0, 2], [198, 18, 0, 1], 0x1234, 8),
        &echo([198, 18, 0, 1], [198, 18, 0, 2], 0x4321, 0),
        CONFIRMED | IPS_SRC_NAT,
        2,
    );
    let binding = NatBinding::of(&decode(&masqueraded).unwrap().unwrap()).unwrap();
    assert_eq!(binding.kind, NatKind::Source);
    assert_eq!(
        binding.container,
        flow(1, ep([172, 17, 0, 2], 0x1234), ep([198, 18, 0, 1], 0x1234))
    );
    assert_eq!(
        binding.public,
        flow(1, ep([198, 18, 0, 2], 0x4321), ep([198, 18, 0, 1], 0x4321))
    );
    check_lookups(&binding);
}

#[test]
fn icmpv6_echo_tuple_decodes_v6_addresses() {
    let packet = parse_frame(flow::fuzzing::seeds::ICMPV6_ECHO, None).unwrap();
    let seen = FlowTuple::of(&packet).unwrap();
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (seen.src.addr, seen.dst.addr) else {
        panic!("seed is not IPv6");
    };
    let echo = |src: Ipv6Addr, dst: Ipv6Addr, icmp_type| Tuple {
        protocol: 58,
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        ports: None,
        icmp: Some((seen.src.port, icmp_type, 0)),
    };
    let bytes = craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &echo(src, dst, 128),
        &echo(dst, src, 129),
        CONFIRMED,
        3,
    );
    let entry = decode(&bytes).unwrap().unwrap();
    assert_eq!(entry.family, 10);
    assert_eq!(entry.orig.flow_tuple(), seen);
    assert_eq!(entry.reply.flow_tuple(), seen.reversed());
}

#[test]
fn destroy_releases_the_binding_new_bound() {
    let new = NatEvent::of(&decode(&masquerade_new()).unwrap().unwrap()).unwrap();
    let destroy = craft::conntrack(
        IPCTNL_MSG_CT_DELETE,
        0,
        &tcp_tuple([172, 17, 0, 2], 40000, [198, 18, 0, 1], 5005),
        &tcp_tuple([198, 18, 0, 1], 5005, [198, 18, 0, 2], 40000),
        CONFIRMED | IPS_SRC_NAT | IPS_SRC_NAT_DONE,
        0xdead_beef,
    );
    let entry = decode(&destroy).unwrap().unwrap();
    assert_eq!(entry.kind, CtKind::Destroy);
    let event = NatEvent::of(&entry).unwrap();
    assert!(matches!(event, NatEvent::Released(_)), "{event:?}");
    assert!(matches!(new, NatEvent::Bound(_)));
    assert_eq!(event.binding(), new.binding());
}

#[test]
fn message_kinds_follow_type_and_flags() {
    let orig = tcp_tuple([172, 17, 0, 2], 1, [198, 18, 0, 1], 2);
    let reply = tcp_tuple([198, 18, 0, 1], 2, [198, 18, 0, 2], 1);
    let kind = |ct_message, flags| {
        decode(&craft::conntrack(ct_message, flags, &orig, &reply, 0, 0))
            .unwrap()
            .map(|e| (e.kind, e.dump_interrupted))
    };
    assert_eq!(kind(IPCTNL_MSG_CT_NEW, NEW_FLAGS), Some((CtKind::New, false)));
    assert_eq!(kind(IPCTNL_MSG_CT_NEW, 0), Some((CtKind::Update, false)));
    assert_eq!(kind(IPCTNL_MSG_CT_GET, NLM_F_MULTI), Some((CtKind::Dump, false)));
    assert_eq!(
        kind(IPCTNL_MSG_CT_GET, NLM_F_MULTI | NLM_F_DUMP_INTR),
        Some((CtKind::Dump, true))
    );
    assert_eq!(kind(IPCTNL_MSG_CT_NEW, NLM_F_MULTI), Some((CtKind::Dump, false)));
    assert_eq!(kind(IPCTNL_MSG_CT_DELETE, 0), Some((CtKind::Destroy, false)));
    // Expectation messages and other ctnetlink messages are not entries.
    assert_eq!(kind(3, 0), None);
    let mut other_subsystem = craft::conntrack(0, 0, &orig, &reply, 0, 0);
    other_subsystem[4..6].copy_from_slice(&u16::from_be_bytes([2, 0]).to_ne_bytes());
    assert_eq!(decode(&other_subsystem).unwrap(), None);
}

#[test]
fn entries_without_nat_give_no_event() {
    let bytes = craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &tcp_tuple([172, 17, 0, 2], 40000, [172, 17, 0, 3], 80),
        &tcp_tuple([172, 17, 0, 3], 80, [172, 17, 0, 2], 40000),
        CONFIRMED,
        9,
    );
    let entry = decode(&bytes).unwrap().unwrap();
    assert_eq!(NatBinding::of(&entry), None);
    assert_eq!(NatEvent::of(&entry), None);
}

#[test]
fn dump_request_is_a_get_dump_of_every_family() {
    let request = dump_request(42);
    let message = messages(&request).next().unwrap().unwrap();
    assert_eq!(message.header.len as usize, request.len());
    assert_eq!(message.header.msg_type, 0x0101);
    assert_eq!(message.header.flags, NLM_F_REQUEST | NLM_F_DUMP);
    assert_eq!(message.header.seq, 42);
    assert_eq!(message.payload, [0, 0, 0, 0]);
}

#[test]
fn specific_malformations_are_named() {
    let orig = tcp_tuple([172, 17, 0, 2], 1, [198, 18, 0, 1], 2);
    let reply = tcp_tuple([198, 18, 0, 1], 2, [198, 18, 0, 2], 1);
    // No reply tuple.
    let bytes = craft::message(IPCTNL_MSG_CT_NEW, NEW_FLAGS, 0, 2, &[orig.attr(1)]);
    assert_eq!(decode(&bytes), Err(ParseError::Missing("CTA_TUPLE_REPLY")));
    // A 5-byte IPv4 address.
    let bad_ip = Attr::Nest(
        1,
        vec![
            Attr::Nest(
                1,
                vec![Attr::Leaf(1, vec![1, 2, 3, 4, 5]), Attr::Leaf(2, vec![1, 2, 3, 4])],
            ),
            Attr::Nest(2, vec![Attr::Leaf(1, vec![6])]),
        ],
    );
    let bytes = craft::message(IPCTNL_MSG_CT_NEW, NEW_FLAGS, 0, 2, &[bad_ip, reply.attr(2)]);
    assert_eq!(
        decode(&bytes),
        Err(ParseError::BadValue {
            what: "CTA_IP_V4_SRC",
            len: 5
        })
    );
    // A tuple without protocol.
    let no_proto = Attr::Nest(
        1,
        vec![Attr::Nest(
            1,
            vec![Attr::Leaf(1, vec![1, 2, 3, 4]), Attr::Leaf(2, vec![1, 2, 3, 4])],
        )],
    );
    let bytes = craft::message(IPCTNL_MSG_CT_NEW, NEW_FLAGS, 0, 2, &[no_proto, reply.attr(2)]);
    assert_eq!(decode(&bytes), Err(ParseError::Missing("CTA_PROTO_NUM")));
    // An attribute claiming 2 bytes.
    let mut bytes = craft::conntrack(IPCTNL_MSG_CT_NEW, NEW_FLAGS, &orig, &reply, 0, 0);
    bytes[NLMSG_HDRLEN + NFGENMSG_LEN..][..2].copy_from_slice(&2u16.to_ne_bytes());
    assert!(matches!(
        decode(&bytes),
        Err(ParseError::BadAttributeLength { claimed: 2, .. })
    ));
    // A message without its nfgenmsg.
    let mut bytes = craft::message(IPCTNL_MSG_CT_NEW, NEW_FLAGS, 0, 2, &[]);
    bytes.truncate(NLMSG_HDRLEN + 2);
    bytes[0..4].copy_from_slice(&((NLMSG_HDRLEN + 2) as u32).to_ne_bytes());
    assert_eq!(decode(&bytes), Err(ParseError::ShortMessage { what: "nfgenmsg" }));
    // A header whose length is past the datagram, or below a header.
    let mut bytes = masquerade_new();
    bytes.truncate(bytes.len() - 1);
    assert!(matches!(
        messages(&bytes).next(),
        Some(Err(ParseError::BadMessageLength { .. }))
    ));
    bytes[0..4].copy_from_slice(&3u32.to_ne_bytes());
    assert!(matches!(
        messages(&bytes).next(),
        Some(Err(ParseError::BadMessageLength { claimed: 3, .. }))
    ));
    assert_eq!(
        error_code(&[1, 2]),
        Err(ParseError::ShortMessage { what: "error code" })
    );
}

/// Decodes a whole datagram the way the watcher does, never panicking.
fn decode_all(bytes: &[u8]) -> Vec<Result<Option<Conntrack>, ParseError>> {
    messages(bytes).map(|m| m.and_then(|m| parse_conntrack(&m))).collect()
}

#[test]
fn every_truncation_is_an_error_or_a_consistent_prefix() {
    for full in [masquerade_new(), dnat_new()] {
        let expected = decode(&full).unwrap().unwrap();
        for cut in 0..full.len() {
            // As received: the header still claims the full length.
            let results = decode_all(&full[..cut]);
            if cut >= NLMSG_HDRLEN {
                assert!(
                    matches!(results[..], [Err(ParseError::BadMessageLength { .. })]),
                    "cut {cut}"
                );
            } else {
                assert!(results.is_empty(), "cut {cut}");
            }
            // With the header's length fixed to the cut: attributes end early.
            if cut >= NLMSG_HDRLEN {
                let mut fixed = full[..cut].to_vec();
                fixed[0..4].copy_from_slice(&(cut as u32).to_ne_bytes());
                match decode(&fixed) {
                    Ok(Some(entry)) => {
                        // Only cuts past both tuples decode, and then agree.
                        assert_eq!((entry.orig, entry.reply), (expected.orig, expected.reply), "cut {cut}");
                    }
                    Ok(None) => panic!("cut {cut} is not a conntrack message"),
                    Err(_) => {}
                }
            }
        }
    }
}

#[test]
fn random_corruption_never_panics() {
    let seeds = [masquerade_new(), dnat_new()];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0;
    for round in 0..20_000 {
        let mut bytes = seeds[round % 2].clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        if next() % 4 == 0 {
            let cut = (next() as usize) % bytes.len();
            bytes.truncate(cut);
        }
        errors += decode_all(&bytes).iter().filter(|r| r.is_err()).count();
        for entry in decode_all(&bytes).into_iter().flatten().flatten() {
            let _ = NatEvent::of(&entry);
        }
    }
    assert!(errors > 1000, "corruption found only {errors} errors");
}

fn socketless_watcher() -> ConntrackWatcher {
    // A socket that joined no group and sends nothing: only the decoding
    // and queueing of crafted datagrams is under test.
    let socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER).expect("netlink socket");
    socket.set_non_blocking(true).unwrap();
    ConntrackWatcher::for_tests(socket)
}

#[test]
fn a_datagram_of_events_becomes_nat_events_in_order() {
    let mut watcher = socketless_watcher();
    let plain = craft::conntrack(
        IPCTNL_MSG_CT_NEW,
        NEW_FLAGS,
        &tcp_tuple([172, 17, 0, 2], 1, [172, 17, 0, 3], 2),
        &tcp_tuple([172, 17, 0, 3], 2, [172, 17, 0, 2], 1),
        CONFIRMED,
        1,
    );
    let destroy = {
        let mut bytes = dnat_new();
        let msg_type = u16::from_be_bytes([NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE]);
        bytes[4..6].copy_from_slice(&msg_type.to_ne_bytes());
        bytes[6..8].copy_from_slice(&0u16.to_ne_bytes());
        bytes
    };
    let mut datagram = masquerade_new();
    datagram.extend_from_slice(&plain);
    datagram.extend_from_slice(&dnat_new());
    datagram.extend_from_slice(&destroy);
    watcher.process_for_tests(&datagram).unwrap();
    let zero = Some(std::time::Duration::ZERO);
    let first = watcher.next_event(zero).unwrap().unwrap();
    assert_eq!(first.binding().kind, NatKind::Source);
    assert!(matches!(first, NatEvent::Bound(_)));
    let second = watcher.next_event(zero).unwrap().unwrap();
    assert!(matches!(second, NatEvent::Bound(b) if b.kind == NatKind::Destination));
    let third = watcher.next_event(zero).unwrap().unwrap();
    assert_eq!(third, NatEvent::Released(*second.binding()));
    assert_eq!(watcher.next_event(zero).unwrap(), None);
    assert_eq!(
        watcher.counters(),
        WatcherCounters {
            messages: 4,
            new_events: 3,
            destroy_events: 1,
            bound: 2,
            released: 1,
            skipped: 1,
            ..WatcherCounters::default()
        }
    );
}

#[test]
fn dump_end_and_dump_errors_are_handled_by_sequence() {
    let mut watcher = socketless_watcher();
    watcher.set_dump_seq_for_tests(Some(7));
    // Another sequence's end is not ours.
    watcher.process_for_tests(&craft::control(NLMSG_DONE, 6, 0)).unwrap();
    assert!(watcher.dump_running());
    let mut datagram = craft::conntrack(
        IPCTNL_MSG_CT_GET,
        NLM_F_MULTI,
        &tcp_tuple([172, 17, 0, 2], 40000, [198, 18, 0, 1], 5005),
        &tcp_tuple([198, 18, 0, 1], 5005, [198, 18, 0, 2], 40000),
        IPS_SRC_NAT,
        5,
    );
    datagram[8..12].copy_from_slice(&7u32.to_ne_bytes());
    datagram.extend_from_slice(&craft::control(NLMSG_DONE, 7, 0));
    watcher.process_for_tests(&datagram).unwrap();
    assert!(!watcher.dump_running());
    assert_eq!(watcher.counters().dumps_completed, 1);
    assert_eq!(watcher.counters().dump_entries, 1);
    let event = watcher.next_event(Some(std::time::Duration::ZERO)).unwrap();
    assert!(matches!(event, Some(NatEvent::Bound(b)) if b.id == Some(5)));
    // An error answer to our dump: the caller sees the errno, and opening
    // would report conntrack unavailable.
    watcher.set_dump_seq_for_tests(Some(8));
    watcher.process_for_tests(&craft::control(NLMSG_ERROR, 3, 0)).unwrap();
    let error = watcher
        .process_for_tests(&craft::control(NLMSG_ERROR, 8, -libc::EPERM))
        .unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EPERM));
    assert!(!watcher.dump_running());
    assert!(matches!(
        crate::watcher::classify_for_tests("dump", error),
        ConntrackError::Unavailable(reason) if reason.contains("CAP_NET_ADMIN")
    ));
    let other = std::io::Error::from_raw_os_error(libc::ENOMEM);
    assert!(matches!(
        crate::watcher::classify_for_tests("dump", other),
        ConntrackError::Io(_)
    ));
    // A datagram whose first message is cut counts as malformed.
    let mut cut = masquerade_new();
    cut.truncate(30);
    watcher.process_for_tests(&cut).unwrap();
    assert_eq!(watcher.counters().malformed, 1);
    assert!(watcher.next_event(Some(std::time::Duration::ZERO)).unwrap().is_none());
}
