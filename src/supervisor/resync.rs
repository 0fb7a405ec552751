//! Bringing a conversation back in step after a missed or misframed reply.

use crate::drivers::Profile;
use crate::drivers::exec::{self, DriverError};
use crate::session::{Identity, Session};

/// Replies read past while resynchronising: late answers, flood chunks, garbage.
const RESYNC_REPLIES: usize = 32;

/// Read timeouts tolerated while resynchronising: a late reply may still be on its way (an
/// integration that outlasted the deadline), so silence is given a few deadlines.
const RESYNC_TIMEOUTS: u32 = 3;

/// Brings the conversation back in step after a missed or misframed reply: clears the device
/// (GPIB) or drops stale input, asks for the identity, and reads past anything else — late
/// replies to earlier queries, the rest of a flood — until a reply reads as this profile's
/// identity, and as the `expected` unit when one is known (a late reply that merely looks like an
/// identity, such as four comma-separated readings, does not end it). Instruments answer in
/// order, so once the identity arrives nothing older is left.
pub async fn resync(
    profile: &Profile,
    session: &mut Session,
    expected: Option<&Identity>,
) -> Result<Identity, DriverError> {
    session.clear().await?;
    let query = &profile.identity.query;
    session.write(query).await?;
    let mut timeouts = 0;
    let mut replies = 0;
    while replies < RESYNC_REPLIES {
        replies += 1;
        match session.read_more().await {
            Ok(mut reply) => {
                let ours = profile
                    .identity
                    .parse(&reply)
                    .is_ok_and(|id| expected.is_none_or(|e| e.same_unit(&id)));
                if ours {
                    exec::read_identity_rest(profile, session, &mut reply).await?;
                    return profile.identity.parse(&reply).map_err(|source| {
                        DriverError::Identity {
                            profile: profile.id.clone(),
                            source,
                        }
                    });
                }
            }
            Err(e) if e.is_connection_lost() => return Err(e.into()),
            Err(e) if e.is_timeout() => {
                timeouts += 1;
                if timeouts >= RESYNC_TIMEOUTS {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    Err(DriverError::OutOfStep {
        query: query.clone(),
        replies,
        timeouts,
    })
}
