//! What the sync tests share: a group of members made from seeds, its epoch key and timing.

use tresor_crypto::Key;
use tresor_crypto::slip10::Ed25519Node;
use tresor_sync::member::Identity;
use tresor_sync::peer::{Group, Peer, Timing};

/// The group id every test group has.
pub const GROUP: [u8; 32] = [0x5a; 32];

/// The identity of member number `n`, from its own vault's master node.
pub fn identity(n: u8) -> Identity {
    Identity::derive(&Ed25519Node::master(&[n + 1; 32]), &GROUP, 0)
}

/// `size` members of one group (epoch 0) under `epoch_key`, each landing the prefix at `team`.
pub fn members(size: u8, epoch_key: &Key, timing: Timing) -> Vec<Peer> {
    let group = Group {
        id: GROUP,
        admin: identity(0).id(),
        epoch: 0,
        members: (0..size).map(|n| identity(n).key()).collect(),
    };
    (0..size)
        .map(|n| Peer::new(identity(n), group.clone(), epoch_key, "team", timing, 0).expect("a member"))
        .collect()
}

/// The same epoch key for every member of a test (set up out of band until pairing exists).
pub fn epoch_key(seed: u8) -> Key {
    Key::from_bytes(&mut [seed; 32])
}
