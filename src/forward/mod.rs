//! Port forwarding under the same grants: `ssh -L` and `ssh -W` (`direct-tcpip` channels) to the
//! destinations a role lists in `forward`.
//!
//! The destination is checked against the roles of the user's live grants ([`dest`]), resolved
//! once, checked against the bastion's own listeners ([`guard`]), and connected to by the
//! bastion itself at the address that was checked; the connection lives only as long as the
//! grant and is indexed as a session of kind `forward` with its bytes each way ([`tunnel`]).

pub mod dest;
pub mod guard;
pub mod tunnel;

pub use dest::{Destination, Host};
pub use guard::OwnListeners;
