"""Trade-flow features (``cvd``, ``tbsr``, ``vwap``, ``vpin``, ``volume-profile``) on real trades.

Checks, on five real trade sets (Binance XRP/ETH in freqtrade and ccxt formats, ETH/USDT-M prints,
a Binance account's BTCUSDT fills, the raw Binance BTCUSDT websocket capture):

* streaming equals batch exactly, NaN where NaN;
* each value equals a straightforward reference written here (explicit window loops, exact
  fractions for the VPIN buckets and the volume profile);
* warm-up: NaN exactly until the window is full;
* invariants under hypothesis (tbsr and vpin in [0, 1], cvd moves by one signed addition);
* the features run inside the engine, fed by a source of real trades plus time bars.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridkit import Bar, Monitor, Source, Trade, hookimpl
from gridkit.core.config import structure
from gridkit.core.plugins import PluginHost
from gridkit.data.bars import TimeBars, parse_interval
from gridkit.plugins.features.flow import Cvd, Tbsr, VolumeProfile, Vpin, Vwap
from gridkit.plugins.sources import parse_iso_ms
from gridkit.testing import build
from helpers import expect

# --- loaders for the real trade files (independent of the trades-file / binance-capture sources)


def _freqtrade(path: Path) -> list[Trade]:
    """freqtrade trades format: ``[ts, id, type, side, price, amount, cost]``."""
    with gzip.open(path, "rt") as f:
        rows = json.load(f)
    return [Trade(int(r[0]), float(r[4]), float(r[5]), r[3], str(r[1])) for r in rows]


def _ccxt(path: Path) -> list[Trade]:
    """ccxt unified trades (``fetch_trades`` output)."""
    with gzip.open(path, "rt") as f:
        rows = json.load(f)
    return [Trade(int(r["timestamp"]), float(r["price"]), float(r["amount"]), r["side"],
                  str(r["id"])) for r in rows]


def _orderflow_csv(path: Path) -> list[Trade]:
    """freqtrade's public trades CSV: ``,timestamp,id,type,side,price,amount,cost,date``."""
    with path.open(newline="") as f:
        return [Trade(int(r["timestamp"]), float(r["price"]), float(r["amount"]), r["side"],
                      r["id"]) for r in csv.DictReader(f)]


def _bbgo(path: Path) -> list[Trade]:
    """bbgo account fills: the taker is the account unless ``isMaker``, then the other side."""
    out = []
    for r in json.loads(path.read_text()):
        mine = r["side"].lower()
        taker = mine if not r["isMaker"] else ("sell" if mine == "buy" else "buy")
        ts = parse_iso_ms(r["tradedAt"])
        out.append(Trade(ts, float(r["price"]), float(r["quantity"]), taker, str(r["id"])))
    out.sort(key=lambda t: t.ts)  # stable: fills of one ms keep their file order
    return out


def _binance_capture(path: Path) -> list[Trade]:
    """``<ns> {"stream":"btcusdt@trade","data":{...}}`` lines; ``m`` true = taker sold."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if '@trade"' not in line:
                continue
            d = json.loads(line.split(" ", 1)[1])["data"]
            out.append(Trade(int(d["T"]), float(d["p"]), float(d["q"]),
                             "sell" if d["m"] else "buy", str(d["t"])))
    return out


FILES: dict[str, tuple[str, Callable[[Path], list[Trade]]]] = {
    "xrp-freqtrade": ("trades_orderbook/freqtrade/XRP_ETH-trades.json.gz", _freqtrade),
    "xrp-ccxt": ("trades_orderbook/freqtrade/XRP_OLD-trades.json.gz", _ccxt),
    "eth-orderflow": ("trades_orderbook/freqtrade/orderflow/public_trades_list.csv",
                      _orderflow_csv),
    "btc-bbgo": ("api_fixtures/bbgo/btcusdt-trades.json", _bbgo),
    "btc-capture": ("trades_orderbook/hftbacktest/spot/btcusdt_20240808.gz", _binance_capture),
}


@cache
def _load(data_dir: Path, name: str) -> list[Trade]:
    rel, loader = FILES[name]
    return loader(data_dir / rel)


@pytest.fixture(params=sorted(set(FILES) - {"xrp-ccxt"}))
def trades(request: pytest.FixtureRequest, data_dir: Path) -> list[Trade]:
    """Each real trade set; the ccxt twin of the XRP prints is checked equal to them once
    (test_loaders_read_the_documented_counts) rather than run through every test again."""
    return _load(data_dir, request.param)


@pytest.fixture
def xrp(data_dir: Path) -> list[Trade]:
    return _load(data_dir, "xrp-freqtrade")


def test_loaders_read_the_documented_counts(data_dir: Path) -> None:
    xrp, old = _load(data_dir, "xrp-freqtrade"), _load(data_dir, "xrp-ccxt")
    # The same prints in two formats (the slice of the ccxt file holds the first 3,000).
    assert len(xrp) == 12_477 and len(old) == expect(12_477, 3_000) and xrp[:len(old)] == old
    assert sum(t.side == "buy" for t in xrp) == 6_524
    assert len(_load(data_dir, "eth-orderflow")) == 1_000
    assert len(_load(data_dir, "btc-bbgo")) == 3_432
    assert len(_load(data_dir, "btc-capture")) == expect(9_757, 2_744)


# --- helpers ----------------------------------------------------------------------------------


def columns(trades: list[Trade]) -> dict[str, np.ndarray]:
    return {
        "ts": np.array([t.ts for t in trades], dtype=np.int64),
        "price": np.array([t.price for t in trades]),
        "qty": np.array([t.qty for t in trades]),
        "side": np.array([1.0 if t.side == "buy" else -1.0 for t in trades]),
    }


def stream(feature: Any, events: list[Any]) -> np.ndarray:
    return np.array([feature.update(e) for e in events])


def signed(t: Trade) -> float:
    return t.qty if t.side == "buy" else -t.qty


def window_of(trades: list[Trade], i: int, window: str) -> list[Trade] | None:
    """The trades in the window ending at trade i, or None while it is not full (reference)."""
    ts = _times(trades)
    if window == "all":
        return trades[: i + 1]
    if window == "day":
        day = trades[i].ts // 86_400_000
        if day == trades[0].ts // 86_400_000:
            return None
        return trades[bisect_left(ts, day * 86_400_000): i + 1]
    if window.isdigit():
        n = int(window)
        return trades[i + 1 - n: i + 1] if i + 1 >= n else None
    span = parse_interval(window)
    if trades[i].ts - trades[0].ts < span:
        return None
    return trades[bisect_right(ts, trades[i].ts - span): i + 1]


_TIMES: dict[int, tuple[list[Trade], list[int]]] = {}


def _times(trades: list[Trade]) -> list[int]:
    # Keyed by id() but holding the list itself: an id is reused once its list is freed (as
    # hypothesis examples are), and a stale entry would hand back another list's times.
    hit = _TIMES.get(id(trades))
    if hit is None or hit[0] is not trades:
        hit = _TIMES[id(trades)] = (trades, [t.ts for t in trades])
    return hit[1]


def sample(n: int, k: int = 150) -> range:
    """About k indices spread over n: reference loops stay fast."""
    return range(0, n, max(1, n // k))


def bucket_volume(trades: list[Trade], buckets: int = 300) -> float:
    return math.fsum(t.qty for t in trades) / buckets


# --- streaming == batch, exactly ---------------------------------------------------------------

CONFIGS: list[tuple[type, dict[str, Any]]] = [
    (Cvd, {}), (Cvd, {"window": "200"}), (Cvd, {"window": "30s"}), (Cvd, {"window": "day"}),
    (Tbsr, {}), (Tbsr, {"window": "200"}), (Tbsr, {"window": "30s", "form": "ratio"}),
    (Tbsr, {"window": "all"}),
    (Vwap, {}), (Vwap, {"window": "200"}), (Vwap, {"window": "1m"}), (Vwap, {"window": "all"}),
    (VolumeProfile, {"window": "300"}), (VolumeProfile, {"window": "1m", "bin_bps": 2.0}),
    (VolumeProfile, {"window": "500", "unit": "bins", "bin_bps": 1.0}),
    (VolumeProfile, {"window": "300", "output": "vah-distance"}),
    (VolumeProfile, {"window": "1m", "bin_bps": 2.0, "output": "val-distance",
                     "value_area": 0.5}),
    (VolumeProfile, {"window": "200", "unit": "bins", "bin_bps": 3.0,
                     "output": "value-area-position"}),
    (VolumeProfile, {"window": "30s", "unit": "bins", "bin_bps": 2.0, "output": "vah-distance",
                     "value_area": 0.9}),
]


@pytest.mark.parametrize(("cls", "options"), CONFIGS,
                         ids=[f"{c.name}-{o}" for c, o in CONFIGS])
def test_streaming_equals_batch(trades: list[Trade], cls: type, options: dict[str, Any]) -> None:
    streamed = stream(build(cls, options), trades)
    batch = build(cls, options).batch(columns(trades))
    assert batch.shape == streamed.shape
    np.testing.assert_array_equal(streamed, batch)


@pytest.mark.parametrize(("buckets", "output"), [(1, "vpin"), (20, "vpin"), (50, "vpin"),
                                                 (10, "zscore")])
def test_vpin_streaming_equals_batch(trades: list[Trade], buckets: int, output: str) -> None:
    options = {"bucket_volume": bucket_volume(trades), "buckets": buckets, "output": output,
               "zscore_window": 20}
    streamed = stream(build(Vpin, options), trades)
    np.testing.assert_array_equal(streamed, build(Vpin, options).batch(columns(trades)))
    assert np.isfinite(streamed).sum() > len(trades) // 3


def test_vwap_on_bars_streaming_equals_batch(gridkit_sample_bars: list[Bar],
                                             gridkit_sample_columns: dict[str, Any]) -> None:
    for window in ("day", "30", "2h", "all"):
        options = {"input": "bars", "window": window}
        streamed = stream(build(Vwap, options), gridkit_sample_bars)
        np.testing.assert_array_equal(streamed,
                                      build(Vwap, options).batch(gridkit_sample_columns))
        assert np.isfinite(streamed).any()


# --- against straightforward references -------------------------------------------------------


def test_cvd_is_the_running_sum_of_signed_quantities(trades: list[Trade]) -> None:
    got = stream(Cvd(), trades)
    acc, want = 0.0, []
    for t in trades:
        acc += signed(t)
        want.append(acc)
    np.testing.assert_array_equal(got, want)  # the same additions in the same order


@pytest.mark.parametrize("window", ["200", "30s", "day"])
def test_cvd_windows_match_explicit_sums(trades: list[Trade], window: str) -> None:
    got = stream(build(Cvd, {"window": window}), trades)
    scale = max(t.qty for t in trades)
    for i in sample(len(trades)):
        w = window_of(trades, i, window)
        if w is None:
            assert math.isnan(got[i])
        else:
            assert got[i] == pytest.approx(math.fsum(signed(t) for t in w), abs=1e-9 * scale)


def crossings(cvd: np.ndarray) -> np.ndarray:
    """Delta flips written from the definition, one trade at a time (reference)."""
    out = np.full(len(cvd), np.nan)
    for i in range(1, len(cvd)):
        prev, cur = cvd[i - 1], cvd[i]
        if math.isnan(prev) or math.isnan(cur):
            continue
        out[i] = 1.0 if prev <= 0.0 < cur else (-1.0 if cur < 0.0 <= prev else 0.0)
    return out


@pytest.mark.parametrize("window", ["all", "200", "30s", "day"])
def test_cvd_flip_streaming_equals_batch(trades: list[Trade], window: str) -> None:
    options = {"window": window, "output": "flip"}
    streamed = stream(build(Cvd, options), trades)
    np.testing.assert_array_equal(streamed, build(Cvd, options).batch(columns(trades)))
    cvd = stream(build(Cvd, {"window": window}), trades)
    np.testing.assert_array_equal(streamed, crossings(cvd))


@pytest.mark.parametrize("window", ["200", "30s"])
def test_cvd_flip_marks_each_zero_crossing_once(trades: list[Trade], window: str) -> None:
    flip = build(Cvd, {"window": window, "output": "flip"})
    got = stream(flip, trades)
    cvd = stream(build(Cvd, {"window": window}), trades)
    ready = ~np.isnan(cvd)
    first = int(np.argmax(ready))
    # NaN exactly until two CVD values exist; then only -1, 0, +1.
    assert np.isnan(got[: first + 1]).all() and flip.ready
    assert set(np.unique(got[first + 1:])) <= {-1.0, 0.0, 1.0}
    ups, downs = np.flatnonzero(got == 1.0), np.flatnonzero(got == -1.0)
    assert len(ups) > 0 and len(downs) > 0  # real order flow changes hands
    assert (cvd[ups] > 0).all() and (cvd[ups - 1] <= 0).all()
    assert (cvd[downs] < 0).all() and (cvd[downs - 1] >= 0).all()
    # Flips alternate: two in a row of the same sign need an exact zero between them.
    events = np.flatnonzero(np.abs(got) == 1.0)
    for a, b in pairwise(events):
        if got[a] == got[b]:
            assert (cvd[a:b + 1] == 0.0).any(), (a, b)
    # Every sign change of the rolling CVD between consecutive trades is one flip.
    s = np.sign(cvd[first:])
    changes = int(((s[1:] > 0) & (s[:-1] <= 0)).sum() + ((s[1:] < 0) & (s[:-1] >= 0)).sum())
    assert changes == len(events)


def test_cvd_flip_on_invalid_prints_is_zero_not_a_repeat(xrp: list[Trade]) -> None:
    options = {"window": "100", "output": "flip"}
    clean = stream(build(Cvd, options), xrp[:3000])
    hostile: list[Trade] = []
    valid: list[int] = []
    for i, t in enumerate(xrp[:3000]):
        hostile.append(t)
        valid.append(len(hostile) - 1)
        if clean[i] != 0.0 and i % 3 == 0:  # right after flips (and NaNs): the risky spots
            p, q = BAD[i % len(BAD)]
            hostile.append(Trade(t.ts, p, q, t.side))
    f = build(Cvd, options)
    got = stream(f, hostile)
    assert f.stats()["invalid_skipped"] == len(hostile) - 3000 > 5
    np.testing.assert_array_equal(got, build(Cvd, options).batch(columns(hostile)))
    np.testing.assert_array_equal(got[valid], clean)  # the valid prints are unaffected
    bad = np.setdiff1d(np.arange(len(hostile)), valid)
    before = got[bad - 1]
    assert ((got[bad] == 0.0) | (np.isnan(got[bad]) & np.isnan(before))).all()
    assert (np.abs(before) == 1.0).any()  # some invalid prints follow a flip: no repeat


@pytest.mark.parametrize("window", ["200", "30s", "all"])
def test_tbsr_matches_explicit_volumes(trades: list[Trade], window: str) -> None:
    share = stream(build(Tbsr, {"window": window}), trades)
    ratio = stream(build(Tbsr, {"window": window, "form": "ratio"}), trades)
    for i in sample(len(trades)):
        w = window_of(trades, i, window)
        if w is None:
            assert math.isnan(share[i]) and math.isnan(ratio[i])
            continue
        buy = math.fsum(t.qty for t in w if t.side == "buy")
        sell = math.fsum(t.qty for t in w if t.side == "sell")
        assert share[i] == pytest.approx(buy / (buy + sell), rel=1e-9, abs=1e-12)
        if sell > 1e-9 * (buy + sell):
            assert ratio[i] == pytest.approx(buy / sell, rel=1e-6)
        elif buy > 0:
            assert ratio[i] > 1e6  # inf, or huge where rounding left a crumb of sell volume


@pytest.mark.parametrize("window", ["200", "1m", "day", "all"])
def test_vwap_is_sum_pq_over_sum_q(trades: list[Trade], window: str) -> None:
    got = stream(build(Vwap, {"window": window}), trades)
    for i in sample(len(trades)):
        w = window_of(trades, i, window)
        if w is None:
            assert math.isnan(got[i])
            continue
        want = math.fsum(t.price * t.qty for t in w) / math.fsum(t.qty for t in w)
        assert got[i] == pytest.approx(want, rel=1e-9)
        assert min(t.price for t in w) * (1 - 1e-12) <= got[i] <= max(t.price for t in w) * (
            1 + 1e-12)


def test_vwap_on_bars_uses_the_typical_price(gridkit_sample_bars: list[Bar]) -> None:
    bars = gridkit_sample_bars
    got = stream(build(Vwap, {"input": "bars", "window": "60"}), bars)
    for i in range(59, len(bars), 37):
        w = bars[i - 59: i + 1]
        want = (math.fsum((b.high + b.low + b.close) / 3 * b.volume for b in w)
                / math.fsum(b.volume for b in w))
        assert got[i] == pytest.approx(want, rel=1e-9)
    assert np.isnan(got[:59]).all()


def vpin_reference(trades: list[Trade], v: float, n: int, m: int = 0
                   ) -> tuple[list[float], list[float], list[bool]]:
    """VPIN (and its z-score over the VPINs of the last m bucket closes) by an explicit bucket
    loop in exact fractions; also flags the trades that end within rounding of a bucket
    boundary (where float and exact may disagree by one bucket)."""
    big_v = Fraction(v)
    imbalances: list[Fraction] = []
    vpins: list[float] = []
    b = s = rolling = Fraction(0)
    total = 0.0  # float: only to flag trades near a boundary
    cur, cur_z = math.nan, math.nan
    out, zs, edge = [], [], []
    for t in trades:
        q = Fraction(t.qty)
        total += t.qty
        while q > 0:
            take = min(q, big_v - b - s)
            if t.side == "buy":
                b += take
            else:
                s += take
            q -= take
            if b + s == big_v:
                imbalances.append(abs(b - s) / big_v)
                rolling += imbalances[-1]
                if len(imbalances) > n:
                    rolling -= imbalances[-n - 1]
                if len(imbalances) >= n:
                    cur = float(rolling / n)
                    vpins.append(cur)
                    if m and len(vpins) >= m:
                        last = vpins[-m:]
                        cur_z = (cur - statistics.fmean(last)) / statistics.stdev(last)
                b = s = Fraction(0)
        out.append(cur)
        zs.append(cur_z)
        frac = (total / v) % 1.0
        edge.append(min(frac, 1.0 - frac) < 1e-8)
    return out, zs, edge


@pytest.mark.parametrize("name", ["xrp-freqtrade", "eth-orderflow", "btc-capture"])
def test_vpin_matches_an_explicit_bucket_loop(data_dir: Path, name: str) -> None:
    trades = _load(data_dir, name)
    v, n, m = bucket_volume(trades), 25, 40
    got = stream(build(Vpin, {"bucket_volume": v, "buckets": n}), trades)
    z = stream(build(Vpin, {"bucket_volume": v, "buckets": n, "output": "zscore",
                            "zscore_window": m}), trades)
    want, want_z, edge = vpin_reference(trades, v, n, m)
    checked = 0
    for g, w, gz, wz, e in zip(got, want, z, want_z, edge, strict=True):
        if e:
            continue
        if math.isnan(w):
            assert math.isnan(g)
        else:
            assert g == pytest.approx(w, abs=1e-9)
            checked += 1
        if math.isnan(wz):
            assert math.isnan(gz)
        else:
            assert gz == pytest.approx(wz, rel=1e-6, abs=1e-6)
    assert checked > len(trades) // 2
    assert np.isfinite(z).sum() > len(trades) // 4


def poc_candidates(window: list[Trade], p0: float, width: float) -> set[int]:
    """Bins whose volume is within rounding of the largest (reference POC)."""
    vol: dict[int, list[float]] = {}
    for t in window:
        vol.setdefault(math.floor((t.price - p0) / width), []).append(t.qty)
    sums = {k: math.fsum(x) for k, x in vol.items()}
    best = max(sums.values())
    return {k for k, x in sums.items() if x >= best * (1 - 1e-9)}


@pytest.mark.parametrize("window", ["300", "1m"])
def test_volume_profile_point_of_control(trades: list[Trade], window: str) -> None:
    bins = stream(build(VolumeProfile, {"window": window, "bin_bps": 2.0, "unit": "bins"}),
                  trades)
    bps = stream(build(VolumeProfile, {"window": window, "bin_bps": 2.0}), trades)
    p0 = trades[0].price
    width = p0 * 2.0 / 10_000
    for i in sample(len(trades), 200):
        w = window_of(trades, i, window)
        if w is None:
            assert math.isnan(bins[i]) and math.isnan(bps[i])
            continue
        k = math.floor((trades[i].price - p0) / width)
        poc = k - int(bins[i])
        assert bins[i] == float(k - poc)
        cands = poc_candidates(w, p0, width)
        assert poc in cands
        if len(cands) == 1 or poc == min(cands):
            centre = p0 + (poc + 0.5) * width
            assert bps[i] == pytest.approx(1e4 * (trades[i].price - centre) / centre, rel=1e-9)


def value_area_reference(window: list[Trade], p0: float, width: float, frac: float,
                         exact: bool = False) -> tuple[int, int] | None:
    """(bottom, top) bins of the equal-tailed value area, from exact bin sums: the lowest bin
    whose cumulative volume from below exceeds ``a V``, the highest whose cumulative volume from
    above does, ``a = (1 - f) / 2``. ``exact``: the quantities are exact in binary, so the
    feature's sums are exact too and its cut is the float ``a * V`` (compared exactly, no
    rounding allowance); otherwise None when a cumulative volume is within rounding of the cut
    (then the float sums may rightly put its bin on either side)."""
    vol: dict[int, Fraction] = {}
    for t in window:
        b = math.floor((t.price - p0) / width)
        vol[b] = vol.get(b, Fraction(0)) + Fraction(t.qty)
    total = sum(vol.values(), Fraction(0))
    alpha = 0.5 * (1.0 - frac)
    if exact:
        target, eps = Fraction(alpha * float(total)), None
    else:
        target, eps = Fraction(alpha) * total, Fraction(1, 10**9) * total
    edges = []
    for order in (sorted(vol), sorted(vol, reverse=True)):
        cum, edge = Fraction(0), None
        for b in order:
            cum += vol[b]
            if eps is not None and abs(cum - target) <= eps:
                return None
            if edge is None and cum > target:
                edge = b
        edges.append(edge)
    val, vah = edges
    assert val is not None and vah is not None
    return val, vah


def _check_value_area(trades: list[Trade], window: str, frac: float, bin_bps: float,
                      exact: bool, k: int = 200) -> tuple[int, int]:
    """Every output of the value area, at about k trades, against value_area_reference; returns
    how many were compared with the reference, and how many of the k had a full window."""
    opts = {"window": window, "bin_bps": bin_bps, "value_area": frac}
    cols = columns(trades)  # batch: equal to streaming (test_streaming_equals_batch), faster
    poc_d, vah_d, val_d = (build(VolumeProfile, {**opts, "unit": "bins", "output": o}).batch(cols)
                           for o in ("poc-distance", "vah-distance", "val-distance"))
    vah_bps, val_bps, pos = (build(VolumeProfile, {**opts, "output": o}).batch(cols)
                             for o in ("vah-distance", "val-distance", "value-area-position"))
    p0 = trades[0].price
    width = p0 * bin_bps / 10_000
    alpha = Fraction(0.5 * (1.0 - frac))
    checked = full = 0
    for i in sample(len(trades), k):
        w = window_of(trades, i, window)
        if w is None:
            assert np.isnan([poc_d[i], vah_d[i], val_d[i], vah_bps[i], val_bps[i],
                             pos[i]]).all()
            continue
        full += 1
        p = trades[i].price
        b = math.floor((p - p0) / width)
        poc, vah, val = b - int(poc_d[i]), b - int(vah_d[i]), b - int(val_d[i])
        assert val <= vah
        high, low = p0 + (vah + 1) * width, p0 + val * width
        assert vah_bps[i] == pytest.approx(1e4 * (p - high) / high, rel=1e-9)
        assert val_bps[i] == pytest.approx(1e4 * (p - low) / low, rel=1e-9)
        assert pos[i] == pytest.approx((p - low) / (high - low), rel=1e-9, abs=1e-12)
        want = value_area_reference(w, p0, width, frac, exact)
        if want is None:
            continue
        assert (val, vah) == want, i
        checked += 1
        if not val <= poc <= vah:  # only a POC in a tail: it holds at most a V
            in_poc = sum((Fraction(t.qty) for t in w
                          if math.floor((t.price - p0) / width) == poc), Fraction(0))
            assert in_poc <= alpha * sum((Fraction(t.qty) for t in w), Fraction(0))
    return checked, full


@pytest.mark.parametrize(("window", "frac", "bin_bps"),
                         [("300", 0.7, 2.0), ("1m", 0.7, 2.0), ("200", 0.5, 2.0),
                          ("600", 0.7, 0.5), ("30s", 0.9, 0.5)])
def test_volume_profile_value_area(trades: list[Trade], window: str, frac: float,
                                   bin_bps: float) -> None:
    """The value area's bins, from every output, against a reference with exact sums."""
    checked, full = _check_value_area(trades, window, frac, bin_bps, exact=False)
    assert full >= 20 and checked >= 0.9 * full


def _dyadic(trades: list[Trade]) -> list[Trade]:
    """The trades with quantities rounded to multiples of 2**-20 (at least one): every running
    sum of the feature is then exact, so its value area must be the reference's, no allowance."""
    return [Trade(t.ts, t.price, max(1, round(t.qty * 2**20)) / 2**20, t.side, t.id)
            for t in trades]


@pytest.mark.parametrize(("window", "frac", "bin_bps"),
                         [("300", 0.7, 2.0), ("600", 0.7, 0.5), ("1m", 0.3, 1.0),
                          ("500", 1.0, 2.0), ("30s", 0.95, 0.5)])
def test_value_area_is_exact_when_the_sums_are(trades: list[Trade], window: str, frac: float,
                                               bin_bps: float) -> None:
    """Real prices, quantities exact in binary: the incrementally kept edges are exactly the
    definition's at every compared trade (no trade skipped as a near tie)."""
    exact = _dyadic(trades)
    checked, full = _check_value_area(exact, window, frac, bin_bps, exact=True, k=300)
    assert checked == full >= 20


_int_trade = st.tuples(
    st.integers(0, 3_000),  # ms since the previous trade
    st.sampled_from([99.0, 99.5, 100.0, 100.01, 100.02, 100.5, 101.0, 103.0]),  # gaps of bins
    st.integers(1, 60).map(float),
    st.booleans(),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_int_trade, min_size=1, max_size=250), st.sampled_from(["1", "5", "40", "3s"]),
       st.sampled_from([0.1, 0.5, 0.7, 0.95, 1.0]))
def test_value_area_edges_follow_every_trade(rows: list[tuple[int, float, float, bool]],
                                             window: str, frac: float) -> None:
    """Edges moved from the previous ones, trade after trade (across empty bins, windows that
    drop a whole price range, a tail emptied by departures), equal the edges computed from
    scratch at every trade, in streaming and in batch."""
    trades = _make(rows)
    opts = {"window": window, "bin_bps": 3.0, "unit": "bins", "value_area": frac}
    top = stream(build(VolumeProfile, {**opts, "output": "vah-distance"}), trades)
    bottom = stream(build(VolumeProfile, {**opts, "output": "val-distance"}), trades)
    cols = columns(trades)
    np.testing.assert_array_equal(
        top, build(VolumeProfile, {**opts, "output": "vah-distance"}).batch(cols))
    np.testing.assert_array_equal(
        bottom, build(VolumeProfile, {**opts, "output": "val-distance"}).batch(cols))
    p0 = trades[0].price
    width = p0 * 3.0 / 10_000
    for i, t in enumerate(trades):
        w = window_of(trades, i, window)
        if w is None:
            assert math.isnan(top[i]) and math.isnan(bottom[i])
            continue
        b = math.floor((t.price - p0) / width)
        assert (b - int(bottom[i]), b - int(top[i])) == value_area_reference(
            w, p0, width, frac, exact=True)


def test_value_area_of_everything_spans_the_window(trades: list[Trade]) -> None:
    """value_area = 1: the value area is every traded bin, so each price sits inside it."""
    opts = {"window": "400", "bin_bps": 3.0, "value_area": 1.0}
    pos = stream(build(VolumeProfile, {**opts, "output": "value-area-position"}), trades)
    val_d = stream(build(VolumeProfile, {**opts, "output": "val-distance", "unit": "bins"}),
                   trades)
    vah_d = stream(build(VolumeProfile, {**opts, "output": "vah-distance", "unit": "bins"}),
                   trades)
    p0 = trades[0].price
    width = p0 * 3.0 / 10_000
    ok = ~np.isnan(pos)
    assert ok.sum() == len(trades) - 399
    assert (pos[ok] >= -1e-9).all() and (pos[ok] <= 1 + 1e-9).all()
    for i in sample(len(trades), 100):
        if not ok[i]:
            continue
        k = math.floor((trades[i].price - p0) / width)
        bins = [math.floor((t.price - p0) / width) for t in trades[i - 399: i + 1]]
        assert (k - val_d[i], k - vah_d[i]) == (min(bins), max(bins))


def test_value_area_narrows_with_its_share(xrp: list[Trade]) -> None:
    """A larger share never gives a narrower value area (each tail's cut moves outward)."""
    widths = []
    for frac in (0.3, 0.7, 0.95):
        opts = {"window": "1000", "bin_bps": 2.0, "unit": "bins", "value_area": frac}
        top = stream(build(VolumeProfile, {**opts, "output": "vah-distance"}), xrp)
        bottom = stream(build(VolumeProfile, {**opts, "output": "val-distance"}), xrp)
        widths.append(bottom - top)  # (k - val) - (k - vah) = vah - val
    ok = ~np.isnan(widths[0])
    assert (widths[0][ok] <= widths[1][ok]).all() and (widths[1][ok] <= widths[2][ok]).all()
    assert (widths[0][ok] < widths[2][ok]).mean() > 0.5


# --- warm-up ------------------------------------------------------------------------------------


def test_nan_exactly_until_the_window_is_full(xrp: list[Trade]) -> None:
    for cls, options in [(Cvd, {"window": "500"}), (Tbsr, {"window": "500"}),
                         (Vwap, {"window": "500"}), (VolumeProfile, {"window": "500"})]:
        f = build(cls, options)
        vals = [f.update(t) for t in xrp[:499]]
        assert all(math.isnan(x) for x in vals) and not f.ready, cls.name
        assert not math.isnan(f.update(xrp[499])) and f.ready, cls.name
    span = parse_interval("1h")
    first = next(i for i, t in enumerate(xrp) if t.ts - xrp[0].ts >= span)
    for cls in (Cvd, Tbsr, Vwap, VolumeProfile):
        got = stream(build(cls, {"window": "1h"}), xrp)
        assert np.isnan(got[:first]).all() and not np.isnan(got[first]), cls.name
    day = [t.ts // 86_400_000 for t in xrp]
    first = day.index(day[0] + 1)
    for cls in (Cvd, Vwap):
        got = stream(build(cls, {"window": "day"}), xrp)
        assert np.isnan(got[:first]).all() and not np.isnan(got[first:]).any(), cls.name
    cvd = Cvd()
    assert cvd.update(xrp[0]) == signed(xrp[0]) and cvd.ready


def test_vpin_nan_until_n_buckets(xrp: list[Trade]) -> None:
    v = 100_000.0
    f = build(Vpin, {"bucket_volume": v, "buckets": 10})
    total = 0.0
    for t in xrp:
        total += t.qty
        value = f.update(t)
        if total < 10 * v * (1 - 1e-12):
            assert math.isnan(value) and not f.ready
        elif total > 10 * v * (1 + 1e-12):
            assert 0.0 <= value <= 1.0 and f.ready
            break


def test_vwap_reads_what_its_input_option_says() -> None:
    assert Vwap().inputs == {"trades"}
    assert build(Vwap, {"input": "bars"}).inputs == {"bars"}


@pytest.mark.parametrize(("cls", "options", "field"), [
    (Cvd, {"window": "0"}, "window"), (Cvd, {"window": "5x"}, "window"),
    (Tbsr, {"window": ""}, "window"), (VolumeProfile, {"window": "day"}, "window"),
    (VolumeProfile, {"window": "all"}, "window"), (Vpin, {"bucket_volume": 0.0}, "bucket_volume"),
    (Vpin, {"bucket_volume": 1.0, "buckets": 0}, "buckets"), (Vpin, {}, "bucket_volume"),
    (VolumeProfile, {"bin_bps": -1.0}, "bin_bps"), (Tbsr, {"form": "odds"}, "form")])
def test_bad_options_are_refused(cls: type, options: dict[str, Any], field: str) -> None:
    config, problems = structure(options, cls.Config, "features[0]")
    assert config is None or problems
    assert problems and field in " ".join(problems), problems


BAD = [(math.nan, 1.0), (1.0, math.nan), (1.0, math.inf), (math.inf, 1.0), (0.0, 1.0),
       (-5.0, 1.0), (1.0, -2.0)]


@pytest.mark.parametrize(("cls", "options"), [*CONFIGS, (Vpin, {"bucket_volume": 20_000.0})],
                         ids=[f"{c.name}-{o}" for c, o in CONFIGS] + ["vpin"])
def test_invalid_prints_are_skipped_and_counted(xrp: list[Trade], cls: type,
                                                options: dict[str, Any]) -> None:
    """NaN, inf, zero or negative price or quantity: no crash, no poisoned state; the value
    repeats, the skip is counted, and batch agrees."""
    trades = xrp[:3000]
    hostile: list[Trade] = []
    for i, t in enumerate(trades):
        if i % 97 == 5:
            p, q = BAD[(i // 97) % len(BAD)]
            hostile.append(Trade(t.ts, p, q, t.side))
        hostile.append(t)
    f = build(cls, options)
    got = stream(f, hostile)
    assert f.stats() == {"invalid_skipped": len(hostile) - len(trades)}
    np.testing.assert_array_equal(got, build(cls, options).batch(columns(hostile)))
    clean = iter(stream(build(cls, options), trades))
    prev = math.nan
    for t, g in zip(hostile, got, strict=True):
        if math.isfinite(t.price) and t.price > 0 and math.isfinite(t.qty) and t.qty >= 0:
            prev = next(clean)
        assert g == prev or (math.isnan(g) and math.isnan(prev))


def test_vwap_on_hostile_bars(gridkit_sample_bars: list[Bar]) -> None:
    from gridkit.testing import HOSTILE_BARS, columns_of

    bars = [*gridkit_sample_bars[:200], *HOSTILE_BARS[:5], *gridkit_sample_bars[200:400]]
    f = build(Vwap, {"input": "bars", "window": "50"})
    got = stream(f, bars)
    np.testing.assert_array_equal(
        got, build(Vwap, {"input": "bars", "window": "50"}).batch(columns_of(bars)))
    assert f.stats()["invalid_skipped"] == 3  # inf high, negative low, zero prices
    assert np.isfinite(got[-200:]).all()


# --- invariants (hypothesis) --------------------------------------------------------------------

_trade = st.tuples(
    st.integers(0, 5_000),  # ms since the previous trade
    st.sampled_from([99.5, 100.0, 100.01, 100.02, 100.5, 101.0]),
    st.one_of(st.floats(1e-6, 1e3), st.integers(1, 50).map(float)),
    st.booleans(),
)


def _make(rows: list[tuple[int, float, float, bool]]) -> list[Trade]:
    ts, out = 1_700_000_000_000, []
    for dt, p, q, buy in rows:
        ts += dt
        out.append(Trade(ts, p, q, "buy" if buy else "sell"))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(_trade, min_size=1, max_size=300), st.sampled_from(["1", "7", "40", "3s", "all"]))
def test_invariants_hold(rows: list[tuple[int, float, float, bool]], window: str) -> None:
    trades = _make(rows)
    cols = columns(trades)
    cvd = stream(Cvd(), trades)
    prev = 0.0
    for t, x in zip(trades, cvd, strict=True):
        assert x == prev + signed(t)  # exactly one signed addition per trade
        prev = x
    tbsr = stream(build(Tbsr, {"window": window}), trades)
    finite = tbsr[~np.isnan(tbsr)]
    assert ((finite >= 0.0) & (finite <= 1.0)).all()
    np.testing.assert_array_equal(tbsr, build(Tbsr, {"window": window}).batch(cols))
    for cls in (Cvd, Vwap):
        np.testing.assert_array_equal(stream(build(cls, {"window": window}), trades),
                                      build(cls, {"window": window}).batch(cols))
    vwap = stream(build(Vwap, {"window": window}), trades)
    ok = ~np.isnan(vwap)
    assert (vwap[ok] >= 99.5 * (1 - 1e-12)).all() and (vwap[ok] <= 101.0 * (1 + 1e-12)).all()
    if window != "all":
        for output in ("poc-distance", "vah-distance", "val-distance", "value-area-position"):
            options = {"window": window, "bin_bps": 3.0, "unit": "bins", "output": output}
            np.testing.assert_array_equal(stream(build(VolumeProfile, options), trades),
                                          build(VolumeProfile, options).batch(cols))


@settings(max_examples=60, deadline=None)
@given(st.lists(_trade, min_size=1, max_size=300), st.floats(0.5, 200.0),
       st.integers(1, 8))
def test_vpin_in_unit_interval(rows: list[tuple[int, float, float, bool]], v: float,
                               n: int) -> None:
    trades = _make(rows)
    options = {"bucket_volume": v, "buckets": n}
    got = stream(build(Vpin, options), trades)
    finite = got[~np.isnan(got)]
    assert ((finite >= 0.0) & (finite <= 1.0)).all()
    np.testing.assert_array_equal(got, build(Vpin, options).batch(columns(trades)))
    zopts = {**options, "output": "zscore", "zscore_window": 3}
    np.testing.assert_array_equal(stream(build(Vpin, zopts), trades),
                                  build(Vpin, zopts).batch(columns(trades)))
    # one-sided flow is fully toxic: every full bucket is all buys
    buys = [Trade(t.ts, t.price, t.qty, "buy") for t in trades]
    got = stream(build(Vpin, options), buys)
    assert (got[~np.isnan(got)] == 1.0).all()


# --- inside the engine ----------------------------------------------------------------------------


class RealTrades(Source):
    """Real XRP/ETH trade prints, with the 5-minute time bars folded from them."""

    name = "test-real-trades"
    provides = frozenset({"bars", "trades"})
    trades: ClassVar[list[Trade]] = []

    def events(self) -> Iterator[Any]:
        tb = TimeBars(parse_interval("5m"))
        for t in self.trades:
            yield t
            bar = tb.add(t)
            if bar is not None:
                yield bar
        last = tb.flush()
        if last is not None:
            yield last


class Recorder(Monitor):
    """Keeps the feature values seen at each bar."""

    name = "test-flow-recorder"
    seen: ClassVar[list[dict[str, float]]] = []

    def on_event(self, ctx: Any) -> None:
        Recorder.seen.append(dict(ctx.features))


class FlowTestPlugin:
    @staticmethod
    @hookimpl
    def gridkit_register_sources(register: Any) -> None:
        register(RealTrades)

    @staticmethod
    @hookimpl
    def gridkit_register_monitors(register: Any) -> None:
        register(Recorder)


FEATURES: dict[str, tuple[type, dict[str, Any]]] = {
    "cvd": (Cvd, {}),
    "cvd-flip": (Cvd, {"window": "500", "output": "flip"}),
    "tbsr": (Tbsr, {"window": "1h"}),
    "vwap": (Vwap, {}),
    "vwap-bars": (Vwap, {"input": "bars", "window": "12"}),
    "vpin": (Vpin, {"bucket_volume": 50_000.0, "buckets": 20}),
    "vpin-z": (Vpin, {"bucket_volume": 50_000.0, "buckets": 20, "output": "zscore",
                      "zscore_window": 10}),
    "volume-profile": (VolumeProfile, {"window": "2000"}),
    "value-area-high": (VolumeProfile, {"window": "2000", "output": "vah-distance"}),
    "value-area-position": (VolumeProfile, {"window": "1h", "output": "value-area-position"}),
}


def _toml_value(v: Any) -> str:
    return json.dumps(v)


PIPE = """
[pipeline]
symbol = "XRP/ETH"
capital = 10
[source]
use = "test-real-trades"
[strategy]
use = "static"
lower = 0.0012
upper = 0.0016
grids = 8
qty = 100
[[monitors]]
use = "test-flow-recorder"
"""


def test_features_run_inside_the_engine(xrp: list[Trade],
                                        gridkit_register_plugin: Callable[..., PluginHost],
                                        gridkit_run_toml: Callable[..., dict[str, Any]]) -> None:
    gridkit_register_plugin(FlowTestPlugin, "flow-test")
    RealTrades.trades = xrp
    Recorder.seen = []
    text = PIPE
    for key, (cls, options) in FEATURES.items():
        text += f'[[features]]\nuse = "{cls.name}"\nkey = "{key}"\n'
        text += "".join(f"{k} = {_toml_value(v)}\n" for k, v in options.items())
    summary = gridkit_run_toml(text)
    assert summary["events"]["trades"] == {"seen": 12_477, "accepted": 12_477, "dropped": 0}
    # The same values, fed by hand in the source's order, at every bar.
    mine = {key: build(cls, options) for key, (cls, options) in FEATURES.items()}
    values = dict.fromkeys(mine, math.nan)
    want = []
    for event in RealTrades().events():
        for key, f in mine.items():
            kind = "bars" if type(event) is Bar else "trades"
            if kind in f.inputs:
                values[key] = f.update(event)
        if type(event) is Bar:
            want.append(dict(values))
    assert len(Recorder.seen) == len(want) == summary["bars_accepted"] > 500
    for key in FEATURES:
        got = np.array([s[key] for s in Recorder.seen])
        np.testing.assert_array_equal(got, [w[key] for w in want])
        assert np.isfinite(got).sum() > len(got) // 2, key


def test_a_source_without_trades_is_refused(gridkit_run_toml: Callable[..., Any]) -> None:
    text = """
[pipeline]
symbol = "BTC/USDT"
capital = 100000
[source]
use = "freqtrade-json"
path = "{sample}"
[[features]]
use = "cvd"
[strategy]
use = "static"
lower = 50000
upper = 58000
grids = 16
qty = 0.05
"""
    with pytest.raises(Exception, match=r"cvd.*trades"):
        gridkit_run_toml(text)
    # vwap on bars runs on the same bar-only source
    summary = gridkit_run_toml(text.replace('use = "cvd"', 'use = "vwap"\ninput = "bars"'))
    assert summary["bars_accepted"] == 3_000
