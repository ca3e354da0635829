//! Why a flag evaluated the way it did.

use serde::{Deserialize, Serialize};

/// Reason codes, as sent in `FlagDetails.reason.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Super conditions or feature enrollment decided the flag.
    SuperConditionValue,
    /// The user is in the experiment holdout.
    HoldoutConditionValue,
    /// A release condition matched.
    ConditionMatch,
    /// A condition's properties matched but its rollout excluded the user.
    OutOfRolloutBound,
    /// No condition matched.
    NoConditionMatch,
    /// A group flag was evaluated without that group in the request.
    NoGroupType,
    /// The flag is inactive.
    FlagDisabled,
    /// A flag dependency is missing or circular.
    MissingDependency,
}

impl ReasonCode {
    /// The wire name, e.g. `"condition_match"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::SuperConditionValue => "super_condition_value",
            ReasonCode::HoldoutConditionValue => "holdout_condition_value",
            ReasonCode::ConditionMatch => "condition_match",
            ReasonCode::OutOfRolloutBound => "out_of_rollout_bound",
            ReasonCode::NoConditionMatch => "no_condition_match",
            ReasonCode::NoGroupType => "no_group_type",
            ReasonCode::FlagDisabled => "flag_disabled",
            ReasonCode::MissingDependency => "missing_dependency",
        }
    }

    /// Rank among failed conditions: the highest-ranked reason is reported.
    pub(crate) fn rank(self) -> u8 {
        match self {
            ReasonCode::SuperConditionValue => 7,
            ReasonCode::HoldoutConditionValue => 6,
            ReasonCode::ConditionMatch => 5,
            ReasonCode::OutOfRolloutBound => 4,
            ReasonCode::NoConditionMatch => 3,
            ReasonCode::NoGroupType => 2,
            ReasonCode::FlagDisabled => 1,
            ReasonCode::MissingDependency => 0,
        }
    }
}

/// The code plus the index of the condition it refers to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// The reason code.
    pub code: ReasonCode,
    /// Zero-based index of the deciding condition.
    pub condition_index: Option<usize>,
}

impl Reason {
    /// A human-readable description, as sent in `reason.description`.
    pub fn description(&self) -> String {
        match self.code {
            ReasonCode::ConditionMatch => match self.condition_index {
                Some(i) => format!("Matched condition set {}", i + 1),
                None => "Matched condition set".to_string(),
            },
            ReasonCode::SuperConditionValue => "Super condition value".to_string(),
            ReasonCode::HoldoutConditionValue => "Holdout condition value".to_string(),
            ReasonCode::OutOfRolloutBound => "Out of rollout bound".to_string(),
            ReasonCode::NoConditionMatch => "No matching condition set".to_string(),
            ReasonCode::NoGroupType => "No group type".to_string(),
            ReasonCode::FlagDisabled => "Feature flag is disabled".to_string(),
            ReasonCode::MissingDependency => "Flag dependency is missing or circular".to_string(),
        }
    }
}
