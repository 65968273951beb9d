// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ModelRegistry} from "./ModelRegistry.sol";

/// @notice The governance token as the rewards contract uses it: an ERC20 it may mint.
interface ICommonsMintableToken is IERC20 {
    /// @notice Mints `amount` tokens to `to`.
    function mint(address to, uint256 amount) external;
}

/// @title ContributionRewards
/// @notice Pays contributors of accepted federated rounds in the governance token, so those who
/// train gain a vote. Per round the coordinator posts a Merkle root of (index, account, amount)
/// and the round's total, which mints the total to this contract; each contributor (or anyone on
/// their behalf) then claims their leaf with a proof and receives it.
/// A round is paid only if it ran: the root names the round's candidate model, which must be
/// registered in the ModelRegistry for that round id, and the round's contributors root, which
/// must equal the one registered with that candidate and be non-zero. The reward tree and the
/// contributors tree are different trees (payments vs. the contributors' signed update
/// commitments); what binds them on chain is the candidate: a reward root is accepted only next
/// to a registered, auditable record of the round's model and of whose updates made it.
/// @dev Leaves are OpenZeppelin StandardMerkleTree leaves of
/// `abi.encode(uint256 index, address account, uint256 amount)` (double keccak256, sorted pairs).
/// Invariants: every posted round names a candidate registered in `registry` with the same round
/// id and the same, non-zero, contributors root; a round's root and total never change once
/// posted; a round's total never exceeds the round budget in force when it was posted; each leaf
/// index is paid at most once; the sum paid for a round never exceeds its total (even if a posted
/// tree is inconsistent), so this contract's balance always covers what is still claimable.
/// Minting the round's total when the root is posted, rather than each leaf when claimed, keeps
/// a claim a plain transfer (no total-supply checkpoint): about 35k gas cheaper per claim. The
/// price: unclaimed rewards count in the total supply, hence in the quorum base, although they
/// cannot vote (this contract never delegates).
contract ContributionRewards is AccessControl {
    using SafeERC20 for ICommonsMintableToken;

    /// @notice Role allowed to post round roots.
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");

    /// @notice A posted round: its Merkle root, declared total and the amount claimed so far.
    struct Round {
        bytes32 root;
        uint128 total;
        uint128 claimed;
    }

    /// @notice The governance token paid to contributors.
    ICommonsMintableToken public immutable token;

    /// @notice The model registry whose registered candidates are the rounds that ran.
    ModelRegistry public immutable registry;

    uint256 private _roundBudget;
    mapping(uint256 roundId => Round) private _rounds;
    mapping(uint256 roundId => mapping(uint256 word => uint256 bits)) private _claimedBitmap;

    /// @notice Emitted when the coordinator posts a round's rewards, for the registered candidate
    /// `candidate` whose contributors root is `contributorsRoot`.
    event RewardRootPosted(
        uint256 indexed roundId,
        bytes32 indexed candidate,
        bytes32 contributorsRoot,
        bytes32 root,
        uint256 total
    );
    /// @notice Emitted when a contributor's reward is claimed (and paid).
    event RewardClaimed(uint256 indexed roundId, uint256 indexed index, address indexed account, uint256 amount);
    /// @notice Emitted when governance changes the per-round budget.
    event RoundBudgetChanged(uint256 previous, uint256 next);

    /// @notice The round's declared total is above the per-round budget.
    error ContributionRewardsAboveBudget(uint256 total, uint256 budget);
    /// @notice A root for this round was already posted.
    error ContributionRewardsRoundAlreadyPosted(uint256 roundId);
    /// @notice The posted root is zero.
    error ContributionRewardsZeroRoot();
    /// @notice No root was posted for this round.
    error ContributionRewardsUnknownRound(uint256 roundId);
    /// @notice The candidate named for the round is not registered in the ModelRegistry.
    error ContributionRewardsUnregisteredCandidate(uint256 roundId, bytes32 candidate);
    /// @notice The candidate was registered for another round.
    error ContributionRewardsCandidateRoundMismatch(uint256 roundId, bytes32 candidate, uint256 candidateRoundId);
    /// @notice The contributors root given differs from the one registered with the candidate.
    error ContributionRewardsContributorsRootMismatch(uint256 roundId, bytes32 registered, bytes32 given);
    /// @notice The candidate was registered without contributors (zero root, e.g. genesis).
    error ContributionRewardsNoContributors(uint256 roundId, bytes32 candidate);
    /// @notice This leaf of the round was already claimed.
    error ContributionRewardsAlreadyClaimed(uint256 roundId, uint256 index);
    /// @notice The proof does not prove the leaf against the round's root.
    error ContributionRewardsInvalidProof(uint256 roundId, uint256 index, address account, uint256 amount);
    /// @notice Paying this claim would exceed the round's declared total.
    error ContributionRewardsExceedsRoundTotal(uint256 roundId, uint256 claimed, uint256 amount, uint256 total);

    /// @param governanceToken The governance token (this contract must hold its minter role).
    /// @param modelRegistry The registry whose candidates are the rounds that may be paid.
    /// @param admin Holder of DEFAULT_ADMIN_ROLE (sets the budget, manages coordinators).
    /// @param coordinator Initial holder of COORDINATOR_ROLE (`address(0)` for none).
    /// @param initialBudget Initial most tokens a single round may pay in total.
    constructor(
        ICommonsMintableToken governanceToken,
        ModelRegistry modelRegistry,
        address admin,
        address coordinator,
        uint256 initialBudget
    ) {
        token = governanceToken;
        registry = modelRegistry;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (coordinator != address(0)) _grantRole(COORDINATOR_ROLE, coordinator);
        _roundBudget = initialBudget;
        emit RoundBudgetChanged(0, initialBudget);
    }

    /// @notice Posts the rewards of round `roundId`, which produced the registered model
    /// `candidate`: the Merkle root of its leaves and their total, and mints the total to this
    /// contract, to be claimed.
    /// @dev Only COORDINATOR_ROLE. Once per round. The candidate must be registered in `registry`
    /// with round id `roundId` and contributors root `contributorsRoot` (non-zero): the
    /// coordinator registers the candidate first, then posts its rewards. `total` must not exceed
    /// the round budget. Checks, then effects, then the mint (the only external write).
    /// @param roundId The federated round paid for.
    /// @param candidate Content hash of the model the round produced (registered).
    /// @param contributorsRoot The round's contributors root, as registered with the candidate.
    /// @param root Merkle root of the (index, account, amount) reward leaves.
    /// @param total Sum of the leaves' amounts: what this round mints.
    function postRoot(
        uint256 roundId,
        bytes32 candidate,
        bytes32 contributorsRoot,
        bytes32 root,
        uint256 total
    ) external onlyRole(COORDINATOR_ROLE) {
        if (root == bytes32(0)) revert ContributionRewardsZeroRoot();
        if (_rounds[roundId].root != bytes32(0)) revert ContributionRewardsRoundAlreadyPosted(roundId);
        (bool registered, uint64 candidateRound, bytes32 registeredRoot) = registry.roundOf(candidate);
        if (!registered) revert ContributionRewardsUnregisteredCandidate(roundId, candidate);
        if (candidateRound != roundId) {
            revert ContributionRewardsCandidateRoundMismatch(roundId, candidate, candidateRound);
        }
        if (registeredRoot != contributorsRoot) {
            revert ContributionRewardsContributorsRootMismatch(roundId, registeredRoot, contributorsRoot);
        }
        if (registeredRoot == bytes32(0)) revert ContributionRewardsNoContributors(roundId, candidate);
        if (total > _roundBudget) revert ContributionRewardsAboveBudget(total, _roundBudget);
        // The budget is far below 2^128 in any sane deployment; the cast is checked anyway.
        if (total > type(uint128).max) revert ContributionRewardsAboveBudget(total, type(uint128).max);
        _rounds[roundId] = Round({root: root, total: uint128(total), claimed: 0});
        emit RewardRootPosted(roundId, candidate, contributorsRoot, root, total);
        token.mint(address(this), total);
    }

    /// @notice Claims leaf `index` of round `roundId`, paying `amount` tokens to `account`.
    /// @dev Anyone may submit the claim; the tokens always go to `account`.
    function claim(uint256 roundId, uint256 index, address account, uint256 amount, bytes32[] calldata proof) external {
        Round storage round = _rounds[roundId];
        bytes32 root = round.root;
        if (root == bytes32(0)) revert ContributionRewardsUnknownRound(roundId);
        uint256 word = index >> 8;
        uint256 bit = 1 << (index & 0xff);
        uint256 bits = _claimedBitmap[roundId][word];
        if (bits & bit != 0) revert ContributionRewardsAlreadyClaimed(roundId, index);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, account, amount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) {
            revert ContributionRewardsInvalidProof(roundId, index, account, amount);
        }
        uint256 claimed = round.claimed;
        if (claimed + amount > round.total) {
            revert ContributionRewardsExceedsRoundTotal(roundId, claimed, amount, round.total);
        }
        _claimedBitmap[roundId][word] = bits | bit;
        round.claimed = uint128(claimed + amount);
        emit RewardClaimed(roundId, index, account, amount);
        token.safeTransfer(account, amount);
    }

    /// @notice Sets the most tokens a single round may pay in total (for roots posted from now on).
    /// @dev Only DEFAULT_ADMIN_ROLE (the timelock).
    function setRoundBudget(uint256 budget) external onlyRole(DEFAULT_ADMIN_ROLE) {
        emit RoundBudgetChanged(_roundBudget, budget);
        _roundBudget = budget;
    }

    /// @notice The most tokens a single round may pay in total.
    function roundBudget() external view returns (uint256) {
        return _roundBudget;
    }

    /// @notice A posted round (all zero if none was posted).
    function getRound(uint256 roundId) external view returns (Round memory) {
        return _rounds[roundId];
    }

    /// @notice Whether leaf `index` of round `roundId` was claimed.
    function isClaimed(uint256 roundId, uint256 index) external view returns (bool) {
        return _claimedBitmap[roundId][index >> 8] & (1 << (index & 0xff)) != 0;
    }
}
