//! Pairing a new member with the group's creator through the relay: an invitation carrying a
//! single-use secret, commitment before reveal, and a short authentication string (four BIP39
//! words from the whole transcript) that the two people compare (ARCHITECTURE.md, "Sharing and
//! sync through a relay", pairing).
//!
//! ```text
//! joiner  → Commit  SHA-256("tresor-sync pairing commit" ‖ joiner keys ‖ n_j)
//! creator → Offer   {group, admin, epoch, members, creator keys, n_c}
//! joiner  → Reveal  {joiner keys, n_j}          creator checks the commitment
//! both:   words = BIP39(SHA-256("tresor-sync pairing v1" ‖ offer ‖ commitment ‖ joiner keys ‖ n_j))[..4]
//! joiner  → Confirmed (or Declined)             once its person compared the words
//! creator → Welcome (or Declined)               once its own person did too
//! ```
//! Anyone in the middle — the relay, or whoever read the invitation — must commit to its keys
//! before it sees the creator's nonce, and shows the creator a transcript with the joiner's nonce
//! it cannot know yet: the words match with probability 2^-44 per attempt. The secret serves
//! once: a second commitment or offer, a commitment that does not open, or any message out of
//! turn burns it, and the pairing says to make a new invitation.

use crate::frame::{self, FrameError, Joiner as Reassembly, Opened, Place};
use crate::member::MemberKey;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tresor_crypto::cell::Cell;
use tresor_crypto::derive::hkdf_sha256;
use tresor_crypto::{Key, hash, random_array};

/// How an invitation's text starts.
const INVITATION_PREFIX: &str = "tresor-invite-1:";
/// The largest pairing message taken in (a welcome carries the group's snapshot, values and all).
const MAX_MESSAGE: usize = 64 << 20;
/// Words of the short authentication string.
pub const SAS_WORDS: usize = 4;

/// Why a pairing failed. Every failure burns the invitation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairError {
    /// The invitation's text is not one.
    #[error("not a tresor invitation: {0}")]
    BadInvitation(&'static str),
    /// Something only an attacker (or a second joiner) sends.
    #[error("{0}: possible attack; make a new invitation")]
    Attack(&'static str),
    /// The system's random source failed.
    #[error("the random source failed")]
    Random,
    /// A message could not be sealed or opened.
    #[error("a pairing message could not be sealed or opened: {0}")]
    Frame(#[from] FrameError),
}

/// An invitation: the relay and a 128-bit single-use secret `P`.
pub struct Invitation {
    /// The relay's URL.
    pub relay: String,
    secret: [u8; 16],
}

impl Invitation {
    /// A new invitation for `relay`.
    pub fn new(relay: &str) -> Result<Invitation, PairError> {
        Ok(Invitation { relay: relay.to_string(), secret: random_array().map_err(|_| PairError::Random)? })
    }

    /// The text a person passes on: `tresor-invite-1:<P in hex>@<relay>`.
    pub fn to_text(&self) -> String {
        format!("{INVITATION_PREFIX}{}@{}", hex::encode(self.secret), self.relay)
    }

    /// The invitation in `text`.
    pub fn parse(text: &str) -> Result<Invitation, PairError> {
        let rest = text
            .trim()
            .strip_prefix(INVITATION_PREFIX)
            .ok_or(PairError::BadInvitation("it does not start with tresor-invite-1:"))?;
        let (secret, relay) =
            rest.split_once('@').ok_or(PairError::BadInvitation("no relay after the code"))?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(secret, &mut bytes)
            .map_err(|_| PairError::BadInvitation("the code is not 32 hex digits"))?;
        if relay.is_empty() {
            return Err(PairError::BadInvitation("no relay after the code"));
        }
        Ok(Invitation { relay: relay.to_string(), secret: bytes })
    }

    /// The mailbox the pairing runs in.
    pub fn mailbox(&self) -> [u8; 32] {
        *hkdf_sha256(&self.secret, b"", b"tresor-sync pairing mailbox").expose_secret()
    }

    fn cell_key(&self) -> Key {
        hkdf_sha256(&self.secret, b"", b"tresor-sync pairing")
    }

    /// `message` from `role` (0 the creator, 1 the joiner) as cells of the pairing mailbox.
    pub fn seal(&self, role: u16, seq: u64, message: &Message) -> Result<Vec<Cell>, PairError> {
        let bytes =
            postcard::to_stdvec(message).map_err(|_| PairError::Attack("a message that does not encode"))?;
        let mailbox = self.mailbox();
        let place = Place { group: &mailbox, epoch: 0, mailbox: &mailbox };
        let key = self.cell_key();
        let mut cells = frame::seal_event(&key, place, role, seq, &bytes)?;
        frame::pad_to_bucket(&key, place, &mut cells)?;
        Ok(cells)
    }

    /// The messages in `cells` of the pairing mailbox, with the role that claims each; cells that
    /// do not open under the invitation's secret are skipped (the relay's, or another group's).
    /// A message uploaded twice (a relay that stores an upload again, a client's retry after a
    /// lost answer) counts once: it is the same message at the same place. Two different ones at
    /// one place both count, and the pairing stops as out of turn.
    pub fn open<'a>(&self, cells: impl IntoIterator<Item = &'a [u8]>) -> Vec<(u16, Message)> {
        let mailbox = self.mailbox();
        let place = Place { group: &mailbox, epoch: 0, mailbox: &mailbox };
        let key = self.cell_key();
        let mut joiner = Reassembly::new(MAX_MESSAGE);
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for cell in cells {
            if let Ok(Opened::Fragment(fragment)) = frame::open_cell(&key, place, cell)
                && let Ok(Some(joined)) = joiner.add(fragment, 1)
                && seen.insert((joined.sender, joined.seq, joined.hash))
                && let Ok(message) = postcard::from_bytes::<Message>(&joined.bytes)
            {
                out.push((joined.sender, message));
            }
        }
        out
    }
}

/// What the creator offers: the group and its own keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The group id.
    pub group: [u8; 32],
    /// The admin (the creator, in this version).
    pub admin: MemberKey,
    /// The current epoch.
    pub epoch: u64,
    /// The current members, in order.
    pub members: Vec<MemberKey>,
    /// The creator's nonce.
    pub nonce: [u8; 32],
}

/// A pairing message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The joiner's commitment to its keys and nonce.
    Commit([u8; 32]),
    /// The creator's offer.
    Offer(Offer),
    /// The joiner's keys and nonce.
    Reveal {
        /// Its keys.
        keys: MemberKey,
        /// Its nonce.
        nonce: [u8; 32],
    },
    /// After both people confirmed the words: the admin's rekey that admits the joiner (its
    /// key wrapped to the joiner's long-term key) and the group's snapshot sealed under it.
    Welcome {
        /// The rekey event, signed.
        rekey: Vec<u8>,
        /// The snapshot, signed and sealed.
        snapshot: Vec<u8>,
    },
    /// The joiner's person confirmed the words: the admin admits it only after this and its own
    /// person's confirmation.
    Confirmed,
    /// A person said the words differ: nothing is shared, and the other side stops waiting.
    Declined,
}

/// The short authentication string both sides show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sas {
    /// Four BIP39 words.
    pub words: Vec<&'static str>,
}

fn commitment(keys: &MemberKey, nonce: &[u8; 32]) -> [u8; 32] {
    hash(&[b"tresor-sync pairing commit".as_slice(), &keys.signing, &keys.agreement, nonce].concat())
}

fn sas(offer: &Offer, commitment: &[u8; 32], joiner: &MemberKey, nonce: &[u8; 32]) -> Result<Sas, PairError> {
    let offer = postcard::to_stdvec(offer).map_err(|_| PairError::Attack("an offer that does not encode"))?;
    let transcript = hash(
        &[
            b"tresor-sync pairing v1".as_slice(),
            &offer,
            commitment,
            &joiner.signing,
            &joiner.agreement,
            nonce,
        ]
        .concat(),
    );
    Ok(Sas { words: tresor_crypto::phrase::digest_words(&transcript, SAS_WORDS) })
}

/// The creator's side of one pairing.
pub struct Creator {
    offer: Offer,
    commitment: Option<[u8; 32]>,
    done: bool,
}

impl Creator {
    /// The creator of `group` (its admin), offering the current epoch's members.
    pub fn new(
        group: [u8; 32],
        admin: MemberKey,
        epoch: u64,
        members: Vec<MemberKey>,
    ) -> Result<Creator, PairError> {
        let nonce = random_array().map_err(|_| PairError::Random)?;
        Ok(Creator { offer: Offer { group, admin, epoch, members, nonce }, commitment: None, done: false })
    }

    /// Takes the joiner's commitment; answers the offer. A second commitment burns the pairing.
    pub fn on_commit(&mut self, commitment: [u8; 32]) -> Result<Message, PairError> {
        if self.commitment.is_some() || self.done {
            self.done = true;
            return Err(PairError::Attack("a second joiner answered the invitation"));
        }
        self.commitment = Some(commitment);
        Ok(Message::Offer(self.offer.clone()))
    }

    /// Takes the joiner's reveal: its keys and the words to compare, if it opens the commitment.
    pub fn on_reveal(&mut self, keys: MemberKey, nonce: [u8; 32]) -> Result<(MemberKey, Sas), PairError> {
        let Some(committed) = self.commitment.filter(|_| !self.done) else {
            self.done = true;
            return Err(PairError::Attack("a reveal out of turn"));
        };
        self.done = true;
        if !bool::from(commitment(&keys, &nonce).ct_eq(&committed)) {
            return Err(PairError::Attack("the joiner's keys do not open its commitment"));
        }
        if self.offer.members.iter().any(|m| m.id() == keys.id()) {
            return Err(PairError::Attack("the joiner is a member already"));
        }
        Ok((keys, sas(&self.offer, &committed, &keys, &nonce)?))
    }
}

/// The joiner's side of one pairing.
pub struct Joiner {
    keys: MemberKey,
    nonce: [u8; 32],
    done: bool,
}

impl Joiner {
    /// A joiner with `keys`, and its commitment to send.
    pub fn new(keys: MemberKey) -> Result<(Joiner, Message), PairError> {
        let nonce = random_array().map_err(|_| PairError::Random)?;
        let message = Message::Commit(commitment(&keys, &nonce));
        Ok((Joiner { keys, nonce, done: false }, message))
    }

    /// Takes the creator's offer: the reveal to send and the words to compare. A second offer
    /// burns the pairing.
    pub fn on_offer(&mut self, offer: Offer) -> Result<(Message, Offer, Sas), PairError> {
        if self.done {
            return Err(PairError::Attack("a second offer answered the commitment"));
        }
        self.done = true;
        if !offer.members.contains(&offer.admin) {
            return Err(PairError::Attack("an offer whose admin is not among its members"));
        }
        let committed = commitment(&self.keys, &self.nonce);
        let words = sas(&offer, &committed, &self.keys, &self.nonce)?;
        Ok((Message::Reveal { keys: self.keys, nonce: self.nonce }, offer, words))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Identity;
    use tresor_crypto::slip10::Ed25519Node;

    fn keys(n: u8) -> MemberKey {
        Identity::derive(&Ed25519Node::master(&[n; 32]), &[9; 32], 0).key()
    }

    /// A whole honest pairing: both sides show the same words and learn each other's keys.
    fn pair(creator: &mut Creator, joiner_keys: MemberKey) -> (Sas, Sas, MemberKey, Offer) {
        let (mut joiner, commit) = Joiner::new(joiner_keys).unwrap();
        let Message::Commit(c) = commit else { panic!() };
        let Message::Offer(offer) = creator.on_commit(c).unwrap() else { panic!() };
        let (reveal, offer, joiner_words) = joiner.on_offer(offer).unwrap();
        let Message::Reveal { keys, nonce } = reveal else { panic!() };
        let (learnt, creator_words) = creator.on_reveal(keys, nonce).unwrap();
        (creator_words, joiner_words, learnt, offer)
    }

    #[test]
    fn an_honest_pairing_shows_the_same_four_words_on_both_sides() {
        let admin = keys(1);
        let mut creator = Creator::new([7; 32], admin, 3, vec![admin]).unwrap();
        let (a, b, learnt, offer) = pair(&mut creator, keys(2));
        assert_eq!(a, b);
        assert_eq!(a.words.len(), SAS_WORDS);
        assert_eq!(learnt, keys(2));
        assert_eq!((offer.group, offer.epoch, offer.admin), ([7; 32], 3, admin));
    }

    #[test]
    fn a_man_in_the_middle_shows_the_two_people_different_words() {
        // Mallory read the invitation (or runs the relay): she pairs with the creator as a
        // joiner and with the joiner as a creator, with her own keys each way.
        let mut mismatches = 0;
        for round in 0..64u8 {
            let admin = keys(1);
            let mut creator = Creator::new([7; 32], admin, 0, vec![admin]).unwrap();
            let (mut joiner, commit) = Joiner::new(keys(2)).unwrap();
            let Message::Commit(joiner_commit) = commit else { panic!() };
            // Toward the creator, as a joiner: she must commit before she sees the creator's nonce.
            let (mut fake_joiner, fake_commit) = Joiner::new(keys(100 + round)).unwrap();
            let Message::Commit(fake_commit) = fake_commit else { panic!() };
            let Message::Offer(real_offer) = creator.on_commit(fake_commit).unwrap() else { panic!() };
            let (fake_reveal, _, _) = fake_joiner.on_offer(real_offer.clone()).unwrap();
            let Message::Reveal { keys: fk, nonce: fnonce } = fake_reveal else { panic!() };
            let (_, creator_words) = creator.on_reveal(fk, fnonce).unwrap();
            // Toward the joiner, as a creator.
            let mut fake_creator = Creator::new([7; 32], keys(200), 0, vec![keys(200)]).unwrap();
            let Message::Offer(fake_offer) = fake_creator.on_commit(joiner_commit).unwrap() else { panic!() };
            let (_, _, joiner_words) = joiner.on_offer(fake_offer).unwrap();
            if creator_words != joiner_words {
                mismatches += 1;
            }
        }
        assert_eq!(mismatches, 64, "a 44-bit string matched by chance");
    }

    #[test]
    fn the_invitation_serves_once_and_a_wrong_reveal_burns_it() {
        let admin = keys(1);
        let mut creator = Creator::new([7; 32], admin, 0, vec![admin]).unwrap();
        creator.on_commit([1; 32]).unwrap();
        assert!(
            matches!(creator.on_commit([2; 32]), Err(PairError::Attack(why)) if why.contains("second joiner"))
        );
        assert!(creator.on_reveal(keys(2), [0; 32]).is_err(), "burnt: nothing more is taken");

        let mut creator = Creator::new([7; 32], admin, 0, vec![admin]).unwrap();
        let (_, commit) = Joiner::new(keys(2)).unwrap();
        let Message::Commit(c) = commit else { panic!() };
        creator.on_commit(c).unwrap();
        // Keys other than the committed ones (a substitution after seeing the offer).
        assert!(
            matches!(creator.on_reveal(keys(3), [0; 32]), Err(PairError::Attack(why)) if why.contains("do not open"))
        );

        let (mut joiner, _) = Joiner::new(keys(2)).unwrap();
        let offer = Offer { group: [7; 32], admin, epoch: 0, members: vec![admin], nonce: [0; 32] };
        joiner.on_offer(offer.clone()).unwrap();
        assert!(matches!(joiner.on_offer(offer), Err(PairError::Attack(_))));
    }

    #[test]
    fn invitations_read_back_and_bad_ones_say_why() {
        let invitation = Invitation::new("https://relay.example:8250").unwrap();
        let text = invitation.to_text();
        let back = Invitation::parse(&text).unwrap();
        assert_eq!(
            (back.relay.as_str(), back.mailbox()),
            ("https://relay.example:8250", invitation.mailbox())
        );
        for (bad, why) in [
            ("hello", "does not start"),
            ("tresor-invite-1:abcd@x", "32 hex"),
            ("tresor-invite-1:00112233445566778899aabbccddeeff", "no relay"),
            ("tresor-invite-1:00112233445566778899aabbccddeeff@", "no relay"),
        ] {
            assert!(
                matches!(Invitation::parse(bad), Err(PairError::BadInvitation(w)) if w.contains(why)),
                "{bad}"
            );
        }
    }

    #[test]
    fn messages_cross_the_relay_sealed_under_the_invitation_only() {
        let invitation = Invitation::new("http://127.0.0.1:8250").unwrap();
        let message = Message::Commit([5; 32]);
        let cells = invitation.seal(1, 1, &message).unwrap();
        assert_eq!(invitation.open(cells.iter().map(|c| c.as_slice())), [(1, message)]);
        let other = Invitation::new("http://127.0.0.1:8250").unwrap();
        assert!(other.open(cells.iter().map(|c| c.as_slice())).is_empty());
        assert_ne!(other.mailbox(), invitation.mailbox());
    }

    /// A relay that stored every upload twice (as a client's retry after a lost answer can make
    /// any relay do) made both sides stop the pairing with "possible attack" (found by review).
    #[test]
    fn regression_a_message_uploaded_twice_was_taken_for_a_second_message() {
        let invitation = Invitation::new("http://127.0.0.1:8250").unwrap();
        let commit = Message::Commit([5; 32]);
        let offer = Message::Declined;
        let (c, o) = (invitation.seal(1, 1, &commit).unwrap(), invitation.seal(0, 1, &offer).unwrap());
        let stored = [&c[..], &c[..], &o[..], &o[..]].concat();
        let opened = invitation.open(stored.iter().map(|c| c.as_slice()));
        assert_eq!(opened, [(1, commit.clone()), (0, offer)]);
        // Another message at the same place is not a duplicate: both count.
        let other = invitation.seal(1, 1, &Message::Commit([6; 32])).unwrap();
        let stored = [&c[..], &other[..]].concat();
        assert_eq!(invitation.open(stored.iter().map(|c| c.as_slice())).len(), 2);
    }
}
