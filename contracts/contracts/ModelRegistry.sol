// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title ModelRegistry
/// @notice The record of every Commons model version and which one everyone runs.
/// @dev Invariants: a version is identified by the sha256 of its checkpoint (`contentHash`,
/// never zero); once registered its record never changes; every version's parent is registered
/// (the genesis version has parent zero), so lineage walks always terminate at genesis; the
/// active version is always a registered one. Coordinators (COORDINATOR_ROLE) register
/// candidates; only the admin (the timelock, i.e. a passed governance proposal) activates one
/// and grants or revokes the coordinator role.
contract ModelRegistry is AccessControl {
    /// @notice Role allowed to register candidate versions.
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");

    /// @notice What a registrant states about a version. Fixed-point fields: `valBpcMicro` and
    /// `epsilonMicro` are ×1e6, `deltaWad` is ×1e18.
    /// @param contentHash sha256 of the checkpoint.
    /// @param parentHash Content hash of the version it was trained from (zero for genesis).
    /// @param uri Where the weights can be fetched (content-addressed; clients verify the hash).
    /// @param roundId Federated round that produced it (0 for genesis).
    /// @param contributorsRoot Merkle root of the contributors' commitments for that round.
    /// @param valBpcMicro Validation bits per character ×1e6.
    /// @param epsilonMicro Differential-privacy ε spent by the round ×1e6.
    /// @param deltaWad Differential-privacy δ ×1e18.
    struct Candidate {
        bytes32 contentHash;
        bytes32 parentHash;
        string uri;
        uint64 roundId;
        bytes32 contributorsRoot;
        uint64 valBpcMicro;
        uint64 epsilonMicro;
        uint64 deltaWad;
    }

    /// @notice A registered version: the candidate plus who registered it and when.
    struct ModelVersion {
        bytes32 contentHash;
        bytes32 parentHash;
        bytes32 contributorsRoot;
        string uri;
        uint64 roundId;
        uint64 valBpcMicro;
        uint64 epsilonMicro;
        uint64 deltaWad;
        address registrant;
        uint48 registeredAt;
    }

    mapping(bytes32 contentHash => ModelVersion) private _versions;
    bytes32[] private _hashes;
    bytes32 private _active;

    /// @notice Emitted when a version is registered.
    event ModelRegistered(
        bytes32 indexed contentHash,
        bytes32 indexed parentHash,
        uint64 indexed roundId,
        address registrant,
        string uri
    );
    /// @notice Emitted when the active version changes.
    event ModelActivated(bytes32 indexed contentHash, bytes32 indexed previous);

    /// @notice A content hash of zero was given.
    error ModelRegistryZeroHash();
    /// @notice The version's URI is empty.
    error ModelRegistryEmptyUri();
    /// @notice A version with this content hash is already registered.
    error ModelRegistryAlreadyRegistered(bytes32 contentHash);
    /// @notice The parent of a candidate is not registered.
    error ModelRegistryUnknownParent(bytes32 parentHash);
    /// @notice No version with this content hash is registered.
    error ModelRegistryUnknownVersion(bytes32 contentHash);
    /// @notice The version is already the active one.
    error ModelRegistryAlreadyActive(bytes32 contentHash);

    /// @param admin Holder of DEFAULT_ADMIN_ROLE (activates versions, manages coordinators).
    /// @param coordinator Initial holder of COORDINATOR_ROLE (`address(0)` for none).
    /// @param genesis The genesis version, registered and active at deployment; its parent
    /// must be zero.
    constructor(address admin, address coordinator, Candidate memory genesis) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (coordinator != address(0)) _grantRole(COORDINATOR_ROLE, coordinator);
        if (genesis.parentHash != bytes32(0)) revert ModelRegistryUnknownParent(genesis.parentHash);
        _register(genesis);
        _activate(genesis.contentHash);
    }

    /// @notice Registers a candidate version trained from a registered parent.
    /// @dev Only COORDINATOR_ROLE. Registration does not activate: that takes governance.
    /// @param candidate The version's record; `parentHash` must be registered.
    function registerCandidate(Candidate calldata candidate) external onlyRole(COORDINATOR_ROLE) {
        if (_versions[candidate.parentHash].contentHash == bytes32(0)) {
            revert ModelRegistryUnknownParent(candidate.parentHash);
        }
        _register(candidate);
    }

    /// @notice Makes a registered version the one every member runs.
    /// @dev Only DEFAULT_ADMIN_ROLE (the timelock). Earlier versions may be re-activated (rollback).
    /// @param contentHash The version to activate.
    function activate(bytes32 contentHash) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_versions[contentHash].contentHash == bytes32(0)) {
            revert ModelRegistryUnknownVersion(contentHash);
        }
        if (contentHash == _active) revert ModelRegistryAlreadyActive(contentHash);
        _activate(contentHash);
    }

    /// @notice The active version's content hash.
    function activeModel() external view returns (bytes32) {
        return _active;
    }

    /// @notice The record of a registered version; reverts if unknown.
    function getVersion(bytes32 contentHash) external view returns (ModelVersion memory) {
        ModelVersion storage version = _versions[contentHash];
        if (version.contentHash == bytes32(0)) revert ModelRegistryUnknownVersion(contentHash);
        return version;
    }

    /// @notice Whether a version with this content hash is registered.
    function isRegistered(bytes32 contentHash) external view returns (bool) {
        return contentHash != bytes32(0) && _versions[contentHash].contentHash == contentHash;
    }

    /// @notice The federated round a version came from and the Merkle root of that round's
    /// contributors, as registered: what ContributionRewards checks a reward root against.
    /// @return registered Whether the version is registered (if not, the other values are zero).
    /// @return roundId The round that produced it (0 for genesis).
    /// @return contributorsRoot Merkle root of the round's contributor commitments.
    function roundOf(bytes32 contentHash)
        external
        view
        returns (bool registered, uint64 roundId, bytes32 contributorsRoot)
    {
        ModelVersion storage version = _versions[contentHash];
        registered = contentHash != bytes32(0) && version.contentHash == contentHash;
        return (registered, version.roundId, version.contributorsRoot);
    }

    /// @notice Number of registered versions (genesis included).
    function versionCount() external view returns (uint256) {
        return _hashes.length;
    }

    /// @notice Content hash of the `index`-th registered version, in registration order.
    function versionAt(uint256 index) external view returns (bytes32) {
        return _hashes[index];
    }

    /// @notice The chain of ancestors of a version: itself, its parent, ... up to genesis or
    /// `maxDepth` entries, whichever comes first. Reverts if the version is unknown.
    function lineage(bytes32 contentHash, uint256 maxDepth) external view returns (bytes32[] memory chain) {
        if (_versions[contentHash].contentHash == bytes32(0)) revert ModelRegistryUnknownVersion(contentHash);
        chain = new bytes32[](maxDepth);
        uint256 length = 0;
        bytes32 cursor = contentHash;
        while (cursor != bytes32(0) && length < maxDepth) {
            chain[length++] = cursor;
            cursor = _versions[cursor].parentHash;
        }
        assembly ("memory-safe") {
            mstore(chain, length)
        }
    }

    function _register(Candidate memory candidate) private {
        bytes32 contentHash = candidate.contentHash;
        if (contentHash == bytes32(0)) revert ModelRegistryZeroHash();
        if (bytes(candidate.uri).length == 0) revert ModelRegistryEmptyUri();
        if (_versions[contentHash].contentHash != bytes32(0)) revert ModelRegistryAlreadyRegistered(contentHash);
        _versions[contentHash] = ModelVersion({
            contentHash: contentHash,
            parentHash: candidate.parentHash,
            contributorsRoot: candidate.contributorsRoot,
            uri: candidate.uri,
            roundId: candidate.roundId,
            valBpcMicro: candidate.valBpcMicro,
            epsilonMicro: candidate.epsilonMicro,
            deltaWad: candidate.deltaWad,
            registrant: msg.sender,
            registeredAt: uint48(block.timestamp)
        });
        _hashes.push(contentHash);
        emit ModelRegistered(contentHash, candidate.parentHash, candidate.roundId, msg.sender, candidate.uri);
    }

    function _activate(bytes32 contentHash) private {
        bytes32 previous = _active;
        _active = contentHash;
        emit ModelActivated(contentHash, previous);
    }
}
