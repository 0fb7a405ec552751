//! The custody states, apart from the state machine so that errors can name them.

/// Where the standard is in its stay at the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not yet received.
    Expected,
    /// Received; the arrival inspection is not recorded yet.
    Received,
    /// Received and inspected; the stabilisation gate has not opened.
    Stabilising,
    /// The gate has opened: official measurements may run.
    OfficialWindow,
    /// Sent on to the next lab.
    Dispatched,
}

impl State {
    /// The state's name, as `custody status` and the manifest spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expected => "expected",
            Self::Received => "received",
            Self::Stabilising => "stabilising",
            Self::OfficialWindow => "official_window",
            Self::Dispatched => "dispatched",
        }
    }

    /// Why an action is refused in this state, for messages.
    pub fn refusal(self) -> &'static str {
        match self {
            Self::Expected => "the standard has not been received",
            Self::Received | Self::Stabilising | Self::OfficialWindow => {
                "the standard has already been received"
            }
            Self::Dispatched => "the standard has been dispatched",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
