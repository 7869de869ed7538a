"""What a NoBids error tells the requester to change, per decline code."""

from mercato.requester._auction import Round, no_bids_error


def _declined(*reasons: str) -> Round:
    rnd = Round(asked=len(reasons))
    for i, reason in enumerate(reasons):
        rnd.causes[f"0x{i:040x}"] = reason
        rnd.kinds[f"0x{i:040x}"] = "declined"
    return rnd


def test_an_expiry_decline_says_to_widen_the_time_to_run():
    err = no_bids_error(_declined("expiry: the expiry leaves 0 s before the deadline, the run needs 40 s"),
                        window=0.25, max_price=10**6)
    assert "raise deadline_s or lower accept_window_s" in str(err)
    assert "raise max_price" not in str(err)


def test_each_code_gets_its_own_advice_once():
    err = no_bids_error(_declined("collateral: over the cap", "collateral: over 100 x the price",
                                  "escrow: deposit 3 mUSD"), window=0.25, max_price=10**6)
    text = str(err)
    assert text.count("lower min_collateral") == 1 and "deposit more" in text
