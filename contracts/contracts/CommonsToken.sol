// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title CommonsToken
/// @notice The Commons governance token: one token, one vote, once delegated.
/// @dev ERC20 + ERC-2612 permit + ERC20Votes on the timestamp clock (ERC-6372), so governance
/// delays are seconds on every chain. New tokens are minted only by MINTER_ROLE holders (the
/// contribution rewards contract); the admin role (the timelock) grants and revokes it.
contract CommonsToken is ERC20, ERC20Permit, ERC20Votes, AccessControl {
    /// @notice Role allowed to mint new tokens.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice The initial distribution arrays have different lengths.
    error CommonsTokenDistributionMismatch(uint256 recipients, uint256 amounts);

    /// @param admin Holder of DEFAULT_ADMIN_ROLE (administers MINTER_ROLE).
    /// @param recipients Initial distribution: who receives tokens at deployment.
    /// @param amounts Initial distribution: how much each recipient receives (18 decimals).
    constructor(
        address admin,
        address[] memory recipients,
        uint256[] memory amounts
    ) ERC20("Commons", "CMNS") ERC20Permit("Commons") {
        if (recipients.length != amounts.length) {
            revert CommonsTokenDistributionMismatch(recipients.length, amounts.length);
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        for (uint256 i = 0; i < recipients.length; ++i) {
            _mint(recipients[i], amounts[i]);
        }
    }

    /// @notice Mints `amount` new tokens to `to`.
    /// @dev Only MINTER_ROLE. Voting power follows `to`'s delegate, if any.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @notice The current timepoint of the voting clock: the block timestamp (ERC-6372).
    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    /// @notice Describes the voting clock (ERC-6372).
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    // ---- Solidity overrides required by the multiple inheritance ----

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }
}
