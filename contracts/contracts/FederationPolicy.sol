// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title FederationPolicy
/// @notice The rules every federated training round obeys, versioned; the coordinator reads the
/// current version at the start of each round and announces it to clients.
/// @dev Invariants: version 1 is set at deployment, versions only grow, a stored version never
/// changes, and every stored version passed the range checks in `_check`. Only the admin (the
/// timelock, i.e. a passed governance proposal) sets a new version.
/// Fixed-point fields end in their scale: `Micro` is ×1e6, `Wad` is ×1e18.
contract FederationPolicy is AccessControl {
    /// @notice Aggregation rules, in the order of the `aggregationRule` codes.
    /// 0 FedAvg, 1 FedProx, 2 FedAdam, 3 FedMedian, 4 trimmed mean, 5 Krum, 6 FedYogi,
    /// 7 FedAdagrad, 8 Multi-Krum. New rules are appended: a code never changes meaning.
    uint8 public constant AGGREGATION_RULE_COUNT = 9;
    /// @notice What a round trains, in the order of the `adapterRule` codes: 0 full-delta (the
    /// whole model's delta), 1 FFA-LoRA (Sun et al., ICLR 2024: a LoRA adapter whose A is frozen
    /// at what the round's seed draws; only B is trained and averaged, so the average is exact),
    /// 2 LoRA-FedAvg (FedIT: A and B both trained and averaged). Appended, never renumbered.
    uint8 public constant ADAPTER_RULE_COUNT = 3;
    /// @notice `loraTargets` is a bitmask over the seven projections: bit 0 q_proj, 1 k_proj,
    /// 2 v_proj, 3 o_proj, 4 gate_proj, 5 up_proj, 6 down_proj.
    uint8 public constant LORA_TARGETS_MASK = 127;

    /// @param clipNormMicro L2 norm each client update is clipped to, (0, 1000].
    /// @param noiseMultiplierMicro Gaussian noise σ as a multiple of the clip norm, [0, 100].
    /// @param minClients Fewest surviving clients for a round to count, [1, 100000] (≥ 2 with secure aggregation).
    /// @param maxClients Most clients invited to a round, [minClients, 100000].
    /// @param sampleRateMicro Fraction of eligible clients sampled per round, (0, 1].
    /// @param localEpochs Passes over local data per round, [1, 100].
    /// @param learningRateMicro Client learning rate, (0, 10].
    /// @param aggregationRule Server rule code, see AGGREGATION_RULE_COUNT.
    /// @param secureAggregation Whether updates must be masked (the server sees only the sum).
    /// @param epsilonBudgetMicro Per-member lifetime ε budget, (0, 1000].
    /// @param deltaWad The δ of every (ε, δ) guarantee, (0, 0.001].
    /// @param roundDeadlineSeconds Seconds clients have to upload, [10, 7 days].
    /// @param clipTargetQuantileMicro Adaptive clipping (Andrew et al. 2021): the quantile γ of
    /// client update norms the clip norm tracks, (0, 1); 0 means a fixed clip norm (clipNormMicro).
    /// With γ > 0, clipNormMicro is the initial clip norm.
    /// @param secAggNumShares SecAgg+ neighbourhood size including the client itself: odd,
    /// [3, 1001]; 0 lets the coordinator choose it from the number of clients (O(log n)).
    /// @param secAggThresholdMicro Fraction of a neighbourhood whose shares reconstruct a dropped
    /// client's mask seed, (0.5, 1]: above one half so that two disjoint groups cannot both
    /// reconstruct.
    /// @param maxExamplesPerUpdate Most examples one upload's FedAvg weight may count, [1, 2^32 − 1]:
    /// on rounds without DP noise the coordinator weights an update by min(its reported
    /// numExamples, this cap), so no client can make its update dictate the average by reporting
    /// a huge count (DP rounds already weight every update equally). Appended last: earlier
    /// fields keep their ABI positions.
    /// @param adapterRule What a round trains, see ADAPTER_RULE_COUNT. Appended with the three
    /// fields after it.
    /// @param loraRank The adapter's rank r, [1, 256]; 0 with full-delta.
    /// @param loraAlphaMicro The adapter's α ×1e6 (its output is scaled by α/r), (0, 1024];
    /// 0 with full-delta.
    /// @param loraTargets The projections that carry the adapter, see LORA_TARGETS_MASK; 0 with
    /// full-delta.
    struct Policy {
        uint64 clipNormMicro;
        uint64 noiseMultiplierMicro;
        uint32 minClients;
        uint32 maxClients;
        uint32 sampleRateMicro;
        uint16 localEpochs;
        uint64 learningRateMicro;
        uint8 aggregationRule;
        bool secureAggregation;
        uint64 epsilonBudgetMicro;
        uint64 deltaWad;
        uint32 roundDeadlineSeconds;
        uint32 clipTargetQuantileMicro;
        uint16 secAggNumShares;
        uint32 secAggThresholdMicro;
        uint64 maxExamplesPerUpdate;
        uint8 adapterRule;
        uint16 loraRank;
        uint32 loraAlphaMicro;
        uint8 loraTargets;
    }

    Policy[] private _versions;

    /// @notice Emitted when a new policy version takes effect.
    event PolicyChanged(uint256 indexed version, Policy policy);

    /// @notice A policy field is outside its allowed range [min, max].
    error FederationPolicyOutOfRange(string field, uint256 value, uint256 min, uint256 max);
    /// @notice A policy field that must be odd is even (a SecAgg+ neighbourhood is the client
    /// and an equal number of neighbours on each side).
    error FederationPolicyNotOdd(string field, uint256 value);
    /// @notice No policy version with this number exists (versions are 1..latest).
    error FederationPolicyUnknownVersion(uint256 version, uint256 latest);

    /// @param admin Holder of DEFAULT_ADMIN_ROLE (sets new versions).
    /// @param initial Version 1 of the policy.
    constructor(address admin, Policy memory initial) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _set(initial);
    }

    /// @notice Replaces the policy with a new version after range-checking every field.
    /// @dev Only DEFAULT_ADMIN_ROLE (the timelock).
    function setPolicy(Policy calldata next) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _set(next);
    }

    /// @notice The policy in force.
    function policy() external view returns (Policy memory) {
        return _versions[_versions.length - 1];
    }

    /// @notice The number of the policy version in force (the first is 1).
    function currentVersion() external view returns (uint256) {
        return _versions.length;
    }

    /// @notice A past or current policy version.
    function policyAt(uint256 version) external view returns (Policy memory) {
        if (version == 0 || version > _versions.length) {
            revert FederationPolicyUnknownVersion(version, _versions.length);
        }
        return _versions[version - 1];
    }

    function _set(Policy memory next) private {
        _check(next);
        _versions.push(next);
        emit PolicyChanged(_versions.length, next);
    }

    function _check(Policy memory p) private pure {
        _range("clipNorm", p.clipNormMicro, 1, 1000e6);
        _range("noiseMultiplier", p.noiseMultiplierMicro, 0, 100e6);
        _range("minClients", p.minClients, p.secureAggregation ? 2 : 1, 100_000);
        _range("maxClients", p.maxClients, p.minClients, 100_000);
        _range("sampleRate", p.sampleRateMicro, 1, 1e6);
        _range("localEpochs", p.localEpochs, 1, 100);
        _range("learningRate", p.learningRateMicro, 1, 10e6);
        _range("aggregationRule", p.aggregationRule, 0, AGGREGATION_RULE_COUNT - 1);
        _range("epsilonBudget", p.epsilonBudgetMicro, 1, 1000e6);
        _range("delta", p.deltaWad, 1, 1e15);
        _range("roundDeadline", p.roundDeadlineSeconds, 10, 7 days);
        _range("clipTargetQuantile", p.clipTargetQuantileMicro, 0, 1e6 - 1);
        if (p.secAggNumShares != 0) {
            _range("secAggNumShares", p.secAggNumShares, 3, 1001);
            if (p.secAggNumShares % 2 == 0) {
                revert FederationPolicyNotOdd("secAggNumShares", p.secAggNumShares);
            }
        }
        _range("secAggThreshold", p.secAggThresholdMicro, 0.5e6 + 1, 1e6);
        _range("maxExamplesPerUpdate", p.maxExamplesPerUpdate, 1, type(uint32).max);
        _range("adapterRule", p.adapterRule, 0, ADAPTER_RULE_COUNT - 1);
        bool adapter = p.adapterRule != 0;
        _range("loraRank", p.loraRank, adapter ? 1 : 0, adapter ? 256 : 0);
        _range("loraAlpha", p.loraAlphaMicro, adapter ? 1 : 0, adapter ? 1024e6 : 0);
        _range("loraTargets", p.loraTargets, adapter ? 1 : 0, adapter ? LORA_TARGETS_MASK : 0);
    }

    function _range(string memory field, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert FederationPolicyOutOfRange(field, value, min, max);
    }
}
