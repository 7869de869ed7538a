# pragma version ~=0.4.3
"""
@title Stake-weighted sortition with weights fixed per epoch
@custom:contract-name sortition
@license MIT
@notice Who may be drawn to audit, and with what weight (SPEC §14.3). The
        Market reports every change of a provider's stake (`set_weight`);
        this module keeps member slots and a Fenwick tree of weights over
        them, so a draw is seventeen reads.

        Weights are fixed per epoch: block numbers are cut into epochs of
        `epoch_blocks` (1..256), a draw in epoch e reads every weight as it
        stood when e began, and a change made during e counts from e + 1.
        The court seeds every seat drawn in epoch e with the hash of the
        block just before e began, which nobody knows while the weights of e
        can still change. So moving stake after seeing an audit's randomness
        changes no draw: neither the seat the change was aimed at nor anyone
        else's interval on the line.

        Each tree node and each member's weight is one word holding two
        versions: cur (bits 0..111, the value when epoch `tag` began), next
        (bits 112..223, the value now) and tag (bits 224..255, the epoch of
        the last write). In epoch e the value a draw reads is next when
        tag < e, else cur; a write first rolls the word forward to e. So the
        weights of the current epoch cost no copy and no keeper.

        Slots: a provider takes a slot once its reported stake reaches
        _MIN_MEMBER_STAKE and leaves it (weight zero) below that. A freed
        slot keeps its owner until both versions of its weight are zero, so
        a provider that leaves still holds its interval, and is still cut out
        of its own deals' draws, for the rest of the epoch; only then may a
        new member reuse it.
"""

from . import errors



_MAX_MEMBERS: constant(uint256) = 65536
_TREE_DEPTH: constant(uint256) = 17
# the stake a provider needs to hold a sortition slot (10 tokens of 6 decimals): filling every
# slot costs 655,360 tokens of stake
_MIN_MEMBER_STAKE: constant(uint256) = 10**7
_MAX_EPOCH_BLOCKS: constant(uint256) = 256
_V: constant(uint256) = 2**112 - 1
_NEXT: constant(uint256) = 112
_TAG: constant(uint256) = 224


epoch_blocks: public(immutable(uint256))

# member index (1..65536) <-> address; an index keeps its owner until reused
_index: HashMap[address, uint256]
_members: HashMap[uint256, address]
_member_count: uint256
# versioned words: tree nodes by Fenwick index (node _MAX_MEMBERS is the total), weights by member index
_tree: HashMap[uint256, uint256]
_weights: HashMap[uint256, uint256]
# member indices given back, a stack (entries are checked when reused)
_freed: HashMap[uint256, uint256]
_freed_count: uint256


@deploy
def __init__(epoch_blocks_: uint256):
    """
    @dev Fixes the epoch length forever.
    @param epoch_blocks_ Blocks per epoch (1..256: the hash of the block before an
           epoch must stay readable through the whole epoch).
    """
    if not (epoch_blocks_ != 0 and epoch_blocks_ <= _MAX_EPOCH_BLOCKS):
        errors._fail("audits: epoch out of range")
    epoch_blocks = epoch_blocks_


@internal
@view
def _epoch() -> uint256:
    """
    @dev The current epoch.
    @return uint256 block.number // epoch_blocks.
    """
    return block.number // epoch_blocks


@internal
@view
def _beacon() -> bytes32:
    """
    @dev The hash of the last block before the current epoch began: unknown
         to anyone while the epoch's weights could still change.
    @return bytes32 The hash (zero in epoch 0).
    """
    start: uint256 = self._epoch() * epoch_blocks
    if start == 0:
        return empty(bytes32)
    return blockhash(start - 1)


@internal
@pure
def _now(word: uint256, e: uint256) -> uint256:
    """
    @dev The value of a versioned word in epoch `e`.
    @param word The word.
    @param e The epoch.
    @return uint256 next when the word was last written before e, else cur.
    """
    if word >> _TAG < e:
        return (word >> _NEXT) & _V
    return word & _V


@internal
@pure
def _write(word: uint256, e: uint256, add: uint256, sub: uint256) -> uint256:
    """
    @dev A versioned word rolled forward to epoch `e` with next + add - sub.
    @param word The word.
    @param e The current epoch.
    @param add Added to next.
    @param sub Taken from next (at most next + add).
    @return uint256 The new word.
    """
    nxt: uint256 = (word >> _NEXT) & _V
    cur: uint256 = word & _V
    if word >> _TAG < e:
        cur = nxt
    return cur | ((nxt + add - sub) << _NEXT) | (e << _TAG)


@internal
def _set_weight(provider: address, stake: uint256):
    """
    @dev Sets `provider`'s weight from the next epoch on: its stake when at
         least the member minimum, else zero. Takes a slot when needed (none
         when all are taken) and gives it back at zero.
    @param provider The provider.
    @param stake Its stake as the Market counts it (zero when unregistered or jailed).
    """
    weight: uint256 = stake
    if weight < _MIN_MEMBER_STAKE:
        weight = 0
    e: uint256 = self._epoch()
    index: uint256 = self._index[provider]
    old: uint256 = 0
    if index != 0 and self._members[index] == provider:
        old = (self._weights[index] >> _NEXT) & _V
    else:
        if weight == 0:
            return
        index = self._take_index(e)
        if index == 0:
            return
        self._index[provider] = index
        self._members[index] = provider
    if weight == old:
        return
    add: uint256 = 0
    sub: uint256 = 0
    if weight > old:
        add = weight - old
    else:
        sub = old - weight
    self._weights[index] = self._write(self._weights[index], e, add, sub)
    i: uint256 = index
    for _: uint256 in range(_TREE_DEPTH):
        if i > _MAX_MEMBERS:
            break
        self._tree[i] = self._write(self._tree[i], e, add, sub)
        i += i & unsafe_sub(0, i)
    if weight == 0:
        count: uint256 = self._freed_count
        self._freed[count] = index
        self._freed_count = count + 1


@internal
def _take_index(e: uint256) -> uint256:
    """
    @dev A member index for a new member: the last freed one when both
         versions of its weight are zero (its old owner loses it), else a new
         one; zero when every slot is taken. A freed entry whose owner came
         back is dropped; one freed in this epoch waits.
    @param e The current epoch.
    @return uint256 The index, or 0.
    """
    count: uint256 = self._freed_count
    if count != 0:
        index: uint256 = self._freed[count - 1]
        word: uint256 = self._weights[index]
        if (word >> _NEXT) & _V != 0:
            # stale: its owner staked again and kept it
            self._freed_count = count - 1
        elif self._now(word, e) == 0:
            self._freed_count = count - 1
            old: address = self._members[index]
            if self._index[old] == index:
                self._index[old] = 0
            return index
    n: uint256 = self._member_count
    if n == _MAX_MEMBERS:
        return 0
    self._member_count = n + 1
    return n + 1


@internal
@view
def _total() -> uint256:
    """
    @dev The sum of all weights in the current epoch.
    @return uint256 Token base units.
    """
    return self._now(self._tree[_MAX_MEMBERS], self._epoch())


@internal
@view
def _weight(who: address) -> uint256:
    """
    @dev `who`'s weight in the current epoch (zero for a non-member).
    @param who Any address.
    @return uint256 Token base units.
    """
    index: uint256 = self._index[who]
    if index == 0 or self._members[index] != who:
        return 0
    return self._now(self._weights[index], self._epoch())


@internal
@view
def _next_weight(who: address) -> uint256:
    """
    @dev `who`'s weight from the next epoch on (zero for a non-member).
    @param who Any address.
    @return uint256 Token base units.
    """
    index: uint256 = self._index[who]
    if index == 0 or self._members[index] != who:
        return 0
    return (self._weights[index] >> _NEXT) & _V


@internal
@view
def _interval(who: address) -> (uint256, uint256):
    """
    @dev Where `who`'s weight sits on the current epoch's line: the sum of
         the weights indexed before it, and its own weight (zero length for a
         non-member).
    @param who Any address.
    @return uint256 The interval's start.
    @return uint256 Its length.
    """
    index: uint256 = self._index[who]
    if index == 0 or self._members[index] != who:
        return 0, 0
    e: uint256 = self._epoch()
    start: uint256 = 0
    i: uint256 = index - 1
    for _: uint256 in range(_TREE_DEPTH):
        if i == 0:
            break
        start += self._now(self._tree[i], e)
        i = i & (i - 1)
    return start, self._now(self._weights[index], e)


@internal
@view
def _member_at(point: uint256) -> address:
    """
    @dev The member whose interval holds `point` in the current epoch: the
         smallest index i with prefix_sum(i) > point (Fenwick descent).
    @param point A number below `_total()`.
    @return address The member.
    """
    e: uint256 = self._epoch()
    pos: uint256 = 0
    rest: uint256 = point
    step: uint256 = _MAX_MEMBERS
    for _: uint256 in range(_TREE_DEPTH):
        nxt: uint256 = pos + step
        if nxt <= _MAX_MEMBERS:
            node: uint256 = self._now(self._tree[nxt], e)
            if node <= rest:
                pos = nxt
                rest -= node
        step >>= 1
    return self._members[pos + 1]
