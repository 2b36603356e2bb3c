//! `web`: a one-time link that signs the browser in to the web console as the SSH user, so the
//! console needs no password: the SSH key that opened this session is the proof.

use super::Reply;
use crate::bastion::Bastion;
use crate::credentials::Secret;
use crate::events::{Event, EventKind};
use crate::grants;
use crate::policy::User;

/// How long a sign-in link works.
pub const LINK_LIFETIME_SECS: i64 = 60;

/// Issues a sign-in link for `user`: single use, valid [`LINK_LIFETIME_SECS`], stored only as
/// the hash of its secret (in the shared store, so it works on whichever node the browser
/// reaches).
pub async fn sign_in_link(bastion: &Bastion, user: &User) -> Reply {
    let http = &bastion.config.http;
    if http.listen.is_none() {
        return Reply::failed("the web console is off on this bastion ([http] listen is not set)");
    }
    let (secret, hash) = Secret::generate();
    let now = grants::now();
    if let Err(e) = bastion
        .store
        .create_login_link(&hash, &user.name, now, now + LINK_LIFETIME_SECS)
        .await
    {
        return Reply::failed(&format!("store unavailable: the link cannot be made ({e})"));
    }
    bastion.events.emit(Event {
        user: Some(user.name.clone()),
        ..Event::new(EventKind::WebLinkIssued)
    });
    Reply::ok(format!(
        "Open this link within {LINK_LIFETIME_SECS} seconds to sign in to the web console as {}; it works once:\n{}/login?token={secret}\n",
        user.name, http.public_url
    ))
}
