// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title CommonsTimelock
/// @notice The executor of every governance decision and the owner of every Commons contract.
/// @dev A plain OpenZeppelin TimelockController; this contract exists so that the project build
/// produces its artifact. Deployment makes the Governor the only proposer and canceller, lets
/// anyone execute a ready operation, and renounces the deployer's admin role.
contract CommonsTimelock is TimelockController {
    /// @param minDelay Seconds between queueing an operation and being able to execute it.
    /// @param proposers Accounts granted the proposer and canceller roles.
    /// @param executors Accounts granted the executor role (`address(0)` means anyone).
    /// @param admin Optional temporary admin (renounced after setup), or `address(0)`.
    constructor(
        uint256 minDelay,
        address[] memory proposers,
        address[] memory executors,
        address admin
    ) TimelockController(minDelay, proposers, executors, admin) {}
}
