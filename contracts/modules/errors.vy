# pragma version ~=0.4.3
"""
@title Shared revert
@custom:contract-name errors
@license MIT
@notice One place that raises every namespaced revert string. Vyper
        inlines the ABI encoding of `Error(string)` at each `assert`
        (~115 bytes a site); routing the ~95 checks of the market through
        this one function instead keeps the runtime under the EIP-170
        24,576-byte limit. Checks read `if <failure>: errors._fail("module: reason")`;
        the success path costs the same as an `assert`. Stateless, so any
        module imports it without `uses`.
"""


@internal
@pure
def _fail(reason: String[64]):
    """
    @dev Reverts with `reason` (always: reasons are never empty).
    @param reason The namespaced revert string.
    """
    assert len(reason) == 0, reason
