// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title ModelRegistry
/// @notice The record of every Commons model version and which one everyone runs, and of the
/// open-weights base models (Llama, Qwen2, SmolLM2…) the community has chosen to build on.
/// @dev Invariants: a version is identified by the sha256 of its checkpoint (`contentHash`,
/// never zero); once registered its record never changes; every version's parent is registered
/// (the genesis version has parent zero), so lineage walks always terminate at genesis; the
/// active version is always a registered one. Coordinators (COORDINATOR_ROLE) register
/// candidates; only the admin (the timelock, i.e. a passed governance proposal) activates one
/// and grants or revokes the coordinator role.
/// Versions as (base, adapter, parent): a version is either a FULL checkpoint (adapterHash zero;
/// its baseHash is its own contentHash: the version is its own base), or an ADAPTER version: the
/// parent with a LoRA adapter folded in, adapterHash being the sha256 of that adapter checkpoint
/// and baseHash the parent's baseHash. So a version's base is its nearest full ancestor, and its
/// lineage is that base plus the chain of adapters since (`adapterChain`). contentHash stays the
/// version's id: the sha256 of the merged checkpoint, which a member who holds the parent
/// recomputes after folding in the adapter, so downloading the adapter alone is verifiable.
/// Base models: a base model is identified by its model-library identity (the sha256 of the
/// canonical manifest of its files' names, sizes and sha256s, never zero); only the admin
/// records one, once, and its record never changes; the community base model is zero (none
/// chosen yet) or a recorded one, and only the admin selects it.
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
    /// @param baseHash The full version it builds on: contentHash for a full version, the
    /// parent's baseHash for an adapter version.
    /// @param adapterHash sha256 of the LoRA adapter folded into the parent; zero for a full version.
    struct Candidate {
        bytes32 contentHash;
        bytes32 parentHash;
        string uri;
        uint64 roundId;
        bytes32 contributorsRoot;
        uint64 valBpcMicro;
        uint64 epsilonMicro;
        uint64 deltaWad;
        bytes32 baseHash;
        bytes32 adapterHash;
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
        bytes32 baseHash;
        bytes32 adapterHash;
        address registrant;
        uint48 registeredAt;
    }

    /// @notice A recorded open-weights base model.
    /// @param identity sha256 of the canonical manifest of the model's files (name, size, sha256).
    /// @param format How the files are laid out: "hf-folder" (a Hugging Face folder) or "gguf".
    /// @param licence The licence the model is published under, as the hub names it
    /// ("apache-2.0", "llama3.2").
    /// @param name The model's public name ("HuggingFaceTB/SmolLM2-135M-Instruct").
    struct BaseModel {
        bytes32 identity;
        string format;
        string licence;
        string name;
        address registrant;
        uint48 registeredAt;
    }

    mapping(bytes32 contentHash => ModelVersion) private _versions;
    bytes32[] private _hashes;
    bytes32 private _active;
    mapping(bytes32 identity => BaseModel) private _baseModels;
    bytes32[] private _baseModelIds;
    bytes32 private _baseModel;

    /// @notice Emitted when a version is registered.
    event ModelRegistered(
        bytes32 indexed contentHash,
        bytes32 indexed parentHash,
        uint64 indexed roundId,
        address registrant,
        string uri
    );
    /// @notice Emitted, after ModelRegistered, when the version is an adapter version.
    event AdapterRegistered(bytes32 indexed contentHash, bytes32 indexed baseHash, bytes32 indexed adapterHash);
    /// @notice Emitted when the active version changes.
    event ModelActivated(bytes32 indexed contentHash, bytes32 indexed previous);

    /// @notice Emitted when governance records a base model.
    event BaseModelRecorded(
        bytes32 indexed identity,
        string name,
        string format,
        string licence,
        address registrant
    );
    /// @notice Emitted when the community base model changes (`previous` is zero the first time).
    event BaseModelSelected(bytes32 indexed identity, bytes32 indexed previous);

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
    /// @notice A full version (no adapter) must be its own base.
    error ModelRegistryFullVersionBase(bytes32 contentHash, bytes32 baseHash);
    /// @notice An adapter version's base must be its parent's base.
    error ModelRegistryBaseMismatch(bytes32 expected, bytes32 given);
    /// @notice The walk from a version to its base is longer than the depth asked for.
    error ModelRegistryChainTooLong(bytes32 contentHash, uint256 maxDepth);
    /// @notice A base model identity of zero was given.
    error ModelRegistryZeroIdentity();
    /// @notice The base model's format is empty.
    error ModelRegistryEmptyFormat();
    /// @notice The base model's name is empty.
    error ModelRegistryEmptyName();
    /// @notice A base model with this identity is already recorded.
    error ModelRegistryBaseModelAlreadyRecorded(bytes32 identity);
    /// @notice No base model with this identity is recorded.
    error ModelRegistryUnknownBaseModel(bytes32 identity);
    /// @notice The base model is already the community's.
    error ModelRegistryAlreadyBaseModel(bytes32 identity);

    /// @param admin Holder of DEFAULT_ADMIN_ROLE (activates versions, manages coordinators).
    /// @param coordinator Initial holder of COORDINATOR_ROLE (`address(0)` for none).
    /// @param genesis The genesis version, registered and active at deployment; its parent
    /// must be zero and it must be a full version (its own base, no adapter).
    constructor(address admin, address coordinator, Candidate memory genesis) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (coordinator != address(0)) _grantRole(COORDINATOR_ROLE, coordinator);
        if (genesis.parentHash != bytes32(0)) revert ModelRegistryUnknownParent(genesis.parentHash);
        if (genesis.adapterHash != bytes32(0) || genesis.baseHash != genesis.contentHash) {
            revert ModelRegistryFullVersionBase(genesis.contentHash, genesis.baseHash);
        }
        _register(genesis);
        _activate(genesis.contentHash);
    }

    /// @notice Registers a candidate version trained from a registered parent.
    /// @dev Only COORDINATOR_ROLE. Registration does not activate: that takes governance.
    /// @param candidate The version's record; `parentHash` must be registered; a full version
    /// is its own base, an adapter version has its parent's base.
    function registerCandidate(Candidate calldata candidate) external onlyRole(COORDINATOR_ROLE) {
        ModelVersion storage parent = _versions[candidate.parentHash];
        if (parent.contentHash == bytes32(0)) revert ModelRegistryUnknownParent(candidate.parentHash);
        if (candidate.adapterHash == bytes32(0)) {
            if (candidate.baseHash != candidate.contentHash) {
                revert ModelRegistryFullVersionBase(candidate.contentHash, candidate.baseHash);
            }
        } else if (candidate.baseHash != parent.baseHash) {
            revert ModelRegistryBaseMismatch(parent.baseHash, candidate.baseHash);
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

    /// @notice Records an open-weights base model the community may build on.
    /// @dev Only DEFAULT_ADMIN_ROLE (the timelock, so a passed proposal). Recording does not select
    /// it: a proposal that makes it the community's base model also calls `setBaseModel`.
    /// @param identity The model-library identity of its files (never zero, recorded once).
    /// @param format "hf-folder" or "gguf" (never empty).
    /// @param licence The licence it is published under.
    /// @param name Its public name (never empty).
    function recordBaseModel(
        bytes32 identity,
        string calldata format,
        string calldata licence,
        string calldata name
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (identity == bytes32(0)) revert ModelRegistryZeroIdentity();
        if (bytes(format).length == 0) revert ModelRegistryEmptyFormat();
        if (bytes(name).length == 0) revert ModelRegistryEmptyName();
        if (_baseModels[identity].identity != bytes32(0)) {
            revert ModelRegistryBaseModelAlreadyRecorded(identity);
        }
        _baseModels[identity] = BaseModel({
            identity: identity,
            format: format,
            licence: licence,
            name: name,
            registrant: msg.sender,
            registeredAt: uint48(block.timestamp)
        });
        _baseModelIds.push(identity);
        emit BaseModelRecorded(identity, name, format, licence, msg.sender);
    }

    /// @notice Makes a recorded base model the community's: the one members' chat checks its
    /// files against.
    /// @dev Only DEFAULT_ADMIN_ROLE (the timelock). An earlier base model may be selected again.
    /// @param identity A recorded base model, not the current one.
    function setBaseModel(bytes32 identity) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_baseModels[identity].identity == bytes32(0)) revert ModelRegistryUnknownBaseModel(identity);
        bytes32 previous = _baseModel;
        if (identity == previous) revert ModelRegistryAlreadyBaseModel(identity);
        _baseModel = identity;
        emit BaseModelSelected(identity, previous);
    }

    /// @notice The community base model's identity, or zero while none is selected.
    function baseModel() external view returns (bytes32) {
        return _baseModel;
    }

    /// @notice The record of a recorded base model; reverts if unknown.
    function getBaseModel(bytes32 identity) external view returns (BaseModel memory) {
        BaseModel storage model = _baseModels[identity];
        if (model.identity == bytes32(0)) revert ModelRegistryUnknownBaseModel(identity);
        return model;
    }

    /// @notice Whether a base model with this identity is recorded.
    function isBaseModelRecorded(bytes32 identity) external view returns (bool) {
        return identity != bytes32(0) && _baseModels[identity].identity == identity;
    }

    /// @notice Number of recorded base models.
    function baseModelCount() external view returns (uint256) {
        return _baseModelIds.length;
    }

    /// @notice Identity of the `index`-th recorded base model, in recording order.
    function baseModelAt(uint256 index) external view returns (bytes32) {
        return _baseModelIds[index];
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

    /// @notice What running a version takes: its base (the nearest full version, itself if full)
    /// and the adapters folded in since, oldest first (apply in this order). Reverts if the
    /// version is unknown, or if more than `maxDepth` adapters lie between it and its base.
    function adapterChain(bytes32 contentHash, uint256 maxDepth)
        external
        view
        returns (bytes32 base, bytes32[] memory adapters)
    {
        ModelVersion storage version = _versions[contentHash];
        if (version.contentHash == bytes32(0)) revert ModelRegistryUnknownVersion(contentHash);
        base = version.baseHash;
        // Counted first, so memory is the chain's length whatever maxDepth says.
        uint256 length = 0;
        for (ModelVersion storage v = version; v.adapterHash != bytes32(0); v = _versions[v.parentHash]) {
            if (length == maxDepth) revert ModelRegistryChainTooLong(contentHash, maxDepth);
            length++;
        }
        adapters = new bytes32[](length);
        for (ModelVersion storage v = version; length > 0; v = _versions[v.parentHash]) {
            adapters[--length] = v.adapterHash;
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
            baseHash: candidate.baseHash,
            adapterHash: candidate.adapterHash,
            registrant: msg.sender,
            registeredAt: uint48(block.timestamp)
        });
        _hashes.push(contentHash);
        emit ModelRegistered(contentHash, candidate.parentHash, candidate.roundId, msg.sender, candidate.uri);
        if (candidate.adapterHash != bytes32(0)) {
            emit AdapterRegistered(contentHash, candidate.baseHash, candidate.adapterHash);
        }
    }

    function _activate(bytes32 contentHash) private {
        bytes32 previous = _active;
        _active = contentHash;
        emit ModelActivated(contentHash, previous);
    }
}
