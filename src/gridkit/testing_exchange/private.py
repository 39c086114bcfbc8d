"""Binance's signed REST endpoints of the local exchange: authentication, dispatch, formats.

:class:`PrivateApi` checks the ``X-MBX-APIKEY`` header and the HMAC-SHA256 ``signature`` as
Binance does (over the query string followed by the body, the signature left out), then calls
the :class:`~gridkit.testing_exchange.matching.Engine` and writes its answer in Binance's
formats: spot ``/api/v3/...``, USDT-M ``/fapi/v1/...``, ``/fapi/v2/...``, ``/fapi/v3/...``.
Prices and quantities are strings, as Binance writes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from gridkit.testing_exchange.matching import (
    ZERO,
    Account,
    BinanceError,
    Engine,
    Fill,
    Order,
    Position,
)


def fmt(x: Decimal, dp: int = 8) -> str:
    """A Decimal as Binance writes it: fixed decimals."""
    return f"{x:.{dp}f}"


def _strip_signature(raw: str) -> tuple[str, str | None]:
    parts = raw.split("&") if raw else []
    sig = None
    kept = []
    for part in parts:
        if part.startswith("signature="):
            sig = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), sig


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


#: Paths that need an API key but no signature (Binance's USER_STREAM security type).
USER_STREAM = ("/api/v3/userDataStream", "/fapi/v1/listenKey")


class PrivateApi:
    """The signed endpoints of one market kind, over an engine guarded by ``lock``.

    :param listen_key: called with an API key to make (or keep) its user-stream listen key.
    """

    def __init__(self, engine: Engine, lock: threading.RLock,
                 listen_key: Callable[[str, str], str], recv_window_check: bool = True) -> None:
        self.engine = engine
        self.lock = lock
        self.listen_key = listen_key
        self.recv_window_check = recv_window_check
        spot = engine.spot
        self.routes: dict[tuple[str, str], Callable[[Account, dict[str, str], int], Any]] = (
            {
                ("POST", "/api/v3/order"): self.new_order,
                ("DELETE", "/api/v3/order"): self.cancel,
                ("GET", "/api/v3/order"): self.query,
                ("GET", "/api/v3/openOrders"): self.open_orders,
                ("DELETE", "/api/v3/openOrders"): self.cancel_all,
                ("GET", "/api/v3/allOrders"): self.all_orders,
                ("GET", "/api/v3/myTrades"): self.my_trades,
                ("GET", "/api/v3/account"): self.spot_account,
            } if spot else {
                ("POST", "/fapi/v1/order"): self.new_order,
                ("DELETE", "/fapi/v1/order"): self.cancel,
                ("GET", "/fapi/v1/order"): self.query,
                ("GET", "/fapi/v1/openOrder"): self.query,
                ("POST", "/fapi/v1/batchOrders"): self.batch_orders,
                ("GET", "/fapi/v1/openOrders"): self.open_orders,
                ("DELETE", "/fapi/v1/allOpenOrders"): self.cancel_all,
                ("GET", "/fapi/v1/allOrders"): self.all_orders,
                ("GET", "/fapi/v1/userTrades"): self.my_trades,
                ("GET", "/fapi/v1/income"): self.income,
                ("POST", "/fapi/v1/leverage"): self.leverage,
                ("POST", "/fapi/v1/positionSide/dual"): self.set_dual,
                ("GET", "/fapi/v1/positionSide/dual"): self.get_dual,
                ("POST", "/fapi/v1/algoOrder"): self.new_algo,
                ("GET", "/fapi/v1/algoOrder"): self.query_algo,
                ("DELETE", "/fapi/v1/algoOrder"): self.cancel_algo,
                ("GET", "/fapi/v1/openAlgoOrders"): self.open_algos,
                ("DELETE", "/fapi/v1/algoOpenOrders"): self.cancel_algos,
                ("GET", "/fapi/v2/account"): self.futures_account,
                ("GET", "/fapi/v3/account"): self.futures_account,
                ("GET", "/fapi/v2/balance"): self.futures_balance,
                ("GET", "/fapi/v3/balance"): self.futures_balance,
                ("GET", "/fapi/v1/leverageBracket"): self.leverage_brackets,
                ("GET", "/fapi/v2/positionRisk"): self.position_risk,
                ("GET", "/fapi/v3/positionRisk"): self.position_risk,
            })
        # ccxt reads currencies from here whenever keys are set, futures classes too.
        self.routes[("GET", "/sapi/v1/capital/config/getall")] = self.capital_config
        for path in USER_STREAM:
            self.routes[("POST", path)] = self.user_stream
            for method in ("PUT", "DELETE"):
                self.routes[(method, path)] = lambda acct, p, now: {}

    def handles(self, method: str, path: str) -> bool:
        return (method, path) in self.routes

    # --- authentication ------------------------------------------------------------------------

    def authenticate(self, method: str, path: str, api_key: str | None, raw_query: str,
                     raw_body: str, now: int) -> tuple[Account, dict[str, str]]:
        """The account and the parameters of a request, or Binance's error."""
        acct = self.engine.accounts.get(api_key or "")
        if acct is None:
            if not api_key:
                raise BinanceError(-2014, "API-key format invalid.", 401)
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query, qsig = _strip_signature(raw_query)
        body, bsig = _strip_signature(raw_body)
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        signature = qsig or bsig
        if path in USER_STREAM and signature is None:
            return acct, params
        if signature is None:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was "
                                      "empty/null, or malformed.")
        if not hmac.compare_digest(sign(acct.secret, query + body), signature):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was "
                                      "empty/null, or malformed.")
        window = int(params.get("recvWindow", 5000))
        ts = int(params["timestamp"])
        if self.recv_window_check and (ts > now + 1000 or now - ts > window):
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return acct, params

    def handle(self, method: str, path: str, api_key: str | None, raw_query: str,
               raw_body: str, now: int) -> Any:
        with self.lock:
            acct, params = self.authenticate(method, path, api_key, raw_query, raw_body, now)
            return self.routes[(method, path)](acct, params, now)

    # --- orders --------------------------------------------------------------------------------

    def _ids(self, p: Mapping[str, str]) -> tuple[int | None, str | None]:
        oid = p.get("orderId")
        try:
            return (int(oid) if oid else None), p.get("origClientOrderId") or None
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'orderId'; legal "
                                      "range is '^[0-9]{1,20}$'.") from None

    def new_order(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        order = self.engine.new_order(acct.key, p, now)
        if not self.engine.spot:
            return self.futures_order(order)
        resp = p.get("newOrderRespType") or (
            "FULL" if order.type in ("MARKET", "LIMIT") else "ACK")
        out: dict[str, Any] = {"symbol": order.symbol, "orderId": order.order_id,
                               "orderListId": -1, "clientOrderId": order.client_id,
                               "transactTime": now}
        if resp == "ACK":
            return out
        full = self.spot_order(order)
        for k in ("time", "updateTime", "isWorking", "icebergQty", "stopPrice"):
            full.pop(k, None)
        if order.stop_price:
            full["stopPrice"] = fmt(order.stop_price)
        out.update(full)
        out["transactTime"] = now
        if resp == "FULL":
            out["fills"] = [{"price": fmt(f.price), "qty": fmt(f.qty),
                             "commission": fmt(f.commission),
                             "commissionAsset": f.commission_asset, "tradeId": f.trade_id}
                            for f in acct.fills if f.order_id == order.order_id]
        return out

    def batch_orders(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        try:
            batch = json.loads(p.get("batchOrders", ""))
        except ValueError:
            raise BinanceError(-1130, "Data sent for parameter 'batchOrders' is not valid.") \
                from None
        if not isinstance(batch, list) or not 1 <= len(batch) <= 5:
            raise BinanceError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
        out: list[dict[str, Any]] = []
        for item in batch:
            try:
                params = {k: str(v).lower() if isinstance(v, bool) else str(v)
                          for k, v in item.items()}
                out.append(self.new_order(acct, params, now))
            except BinanceError as err:  # each order succeeds or fails on its own
                out.append({"code": err.code, "msg": err.msg})
        return out

    def cancel(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        oid, cid = self._ids(p)
        order = self.engine.cancel(acct.key, p.get("symbol", ""), now, oid, cid,
                                   p.get("newClientOrderId"))
        if not self.engine.spot:
            return self.futures_order(order)
        out = self.spot_order(order)
        for k in ("time", "updateTime", "isWorking", "icebergQty", "workingTime"):
            out.pop(k, None)
        if not order.stop_price:
            out.pop("stopPrice")
        return {"symbol": order.symbol, "origClientOrderId": order.client_id,
                **{k: v for k, v in out.items() if k != "symbol"},
                "clientOrderId": order.cancel_client_id, "transactTime": now}

    def cancel_all(self, acct: Account, p: dict[str, str], now: int) -> Any:
        orders = self.engine.cancel_all(acct.key, p.get("symbol", ""), now)
        if not self.engine.spot:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        if not orders:
            raise BinanceError(-2011, "Unknown order sent.")
        return [{"symbol": o.symbol, "origClientOrderId": o.client_id,
                 **{k: v for k, v in self.spot_order(o).items()
                    if k not in ("symbol", "time", "updateTime", "isWorking", "icebergQty",
                                 "workingTime", "stopPrice")},
                 "clientOrderId": o.cancel_client_id, "transactTime": now} for o in orders]

    def query(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        oid, cid = self._ids(p)
        order = self.engine.query(acct.key, p.get("symbol", ""), oid, cid)
        return self.spot_order(order) if self.engine.spot else self.futures_order(order, True)

    def _orders(self, acct: Account, p: Mapping[str, str], open_only: bool) -> list[Order]:
        symbol = p.get("symbol")
        if symbol:
            self.engine.rules_of(symbol)
        elif not open_only:
            self.engine.rules_of("")
        orders = [o for o in acct.orders if (not symbol or o.symbol == symbol)
                  and (o.is_open or not open_only)]
        if "orderId" in p:
            orders = [o for o in orders if o.order_id >= int(p["orderId"])]
        if "startTime" in p:
            orders = [o for o in orders if o.time >= int(p["startTime"])]
        if "endTime" in p:
            orders = [o for o in orders if o.time <= int(p["endTime"])]
        if not open_only:
            orders = orders[:int(p.get("limit", 500))] if "orderId" in p or "startTime" in p \
                else orders[-int(p.get("limit", 500)):]
        return orders

    def open_orders(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        f = self.spot_order if self.engine.spot else (lambda o: self.futures_order(o, True))
        return [f(o) for o in self._orders(acct, p, True)]

    def all_orders(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        f = self.spot_order if self.engine.spot else (lambda o: self.futures_order(o, True))
        return [f(o) for o in self._orders(acct, p, False)]

    def my_trades(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        symbol = p.get("symbol", "")
        self.engine.rules_of(symbol)
        fills = [f for f in acct.fills if f.symbol == symbol]
        if "orderId" in p:
            fills = [f for f in fills if f.order_id == int(p["orderId"])]
        if "fromId" in p:
            fills = [f for f in fills if f.trade_id >= int(p["fromId"])]
        if "startTime" in p:
            fills = [f for f in fills if f.time >= int(p["startTime"])]
        if "endTime" in p:
            fills = [f for f in fills if f.time <= int(p["endTime"])]
        limit = int(p.get("limit", 500))
        fills = fills[:limit] if "fromId" in p or "startTime" in p else fills[-limit:]
        return [self.spot_trade(f) if self.engine.spot else self.futures_trade(f) for f in fills]

    def income(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        """``/fapi/v1/income``: the account's income records (funding fees), oldest first,
        filtered by ``symbol``, ``incomeType``, ``startTime`` and ``endTime`` as Binance does
        (at most ``limit``, 100 by default, 1,000 at most)."""
        got = list(acct.incomes)
        if p.get("symbol"):
            got = [r for r in got if r["symbol"] == p["symbol"]]
        if p.get("incomeType"):
            got = [r for r in got if r["incomeType"] == p["incomeType"]]
        if "startTime" in p:
            got = [r for r in got if r["time"] >= int(p["startTime"])]
        if "endTime" in p:
            got = [r for r in got if r["time"] <= int(p["endTime"])]
        return got[:min(int(p.get("limit", 100)), 1000)]

    # --- spot formats --------------------------------------------------------------------------

    def spot_order(self, o: Order) -> dict[str, Any]:
        return {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
                "clientOrderId": o.client_id, "price": fmt(o.price), "origQty": fmt(o.qty),
                "executedQty": fmt(o.filled), "cummulativeQuoteQty": fmt(o.quote),
                "status": o.status, "timeInForce": o.tif or "GTC", "type": o.type,
                "side": o.side, "stopPrice": fmt(o.stop_price), "icebergQty": fmt(ZERO),
                "time": o.time, "updateTime": o.update_time, "isWorking": o.triggered,
                "workingTime": o.time if o.triggered else -1,
                "origQuoteOrderQty": fmt(ZERO), "selfTradePreventionMode": "EXPIRE_MAKER"}

    @staticmethod
    def spot_trade(f: Fill) -> dict[str, Any]:
        return {"symbol": f.symbol, "id": f.trade_id, "orderId": f.order_id, "orderListId": -1,
                "price": fmt(f.price), "qty": fmt(f.qty), "quoteQty": fmt(f.quote),
                "commission": fmt(f.commission), "commissionAsset": f.commission_asset,
                "time": f.time, "isBuyer": f.side == "BUY", "isMaker": f.maker,
                "isBestMatch": True}

    def spot_account(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        e = self.engine
        assets = sorted(set(acct.balances) | {a for r in e.rules.values()
                                              for a in (r.base, r.quote)})
        bp = int(e.maker_fee * 10_000), int(e.taker_fee * 10_000)
        return {"makerCommission": bp[0], "takerCommission": bp[1], "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": fmt(e.maker_fee), "taker": fmt(e.taker_fee),
                                    "buyer": fmt(ZERO), "seller": fmt(ZERO)},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": acct.update_time, "accountType": "SPOT",
                "balances": [{"asset": a, "free": fmt(acct.balance(a)[0]),
                              "locked": fmt(acct.balance(a)[1])} for a in assets],
                "permissions": ["SPOT"], "uid": 1000 + list(e.accounts).index(acct.key)}

    def capital_config(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        """``/sapi/v1/capital/config/getall``, which ccxt reads for currencies when keys are
        set: every asset of the symbols, with the account's balance and one network."""
        assets = sorted({a for r in self.engine.rules.values() for a in (r.base, r.quote)})
        return [{"coin": a, "depositAllEnable": True, "withdrawAllEnable": True, "name": a,
                 "free": fmt(acct.balance(a)[0]), "locked": fmt(acct.balance(a)[1]),
                 "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0",
                 "storage": "0", "isLegalMoney": False, "trading": True,
                 "networkList": [{"network": a, "coin": a, "withdrawIntegerMultiple": "0.00000001",
                                  "isDefault": True, "depositEnable": True,
                                  "withdrawEnable": True, "depositDesc": "", "withdrawDesc": "",
                                  "name": a, "resetAddressStatus": False, "withdrawFee": "0",
                                  "withdrawMin": "0", "withdrawMax": "9999999999",
                                  "minConfirm": 1, "unLockConfirm": 0, "sameAddress": False,
                                  "busy": False}]} for a in assets]

    # --- futures formats -----------------------------------------------------------------------

    def futures_order(self, o: Order, with_time: bool = False) -> dict[str, Any]:
        r = self.engine.rules[o.symbol]
        out = {"orderId": o.order_id, "symbol": o.symbol, "status": o.status,
               "clientOrderId": o.client_id, "price": fmt(o.price, r.price_dp),
               "avgPrice": fmt(o.avg_price, max(r.price_dp, 5)),
               "origQty": fmt(o.qty, r.qty_dp), "executedQty": fmt(o.filled, r.qty_dp),
               "cumQty": fmt(o.filled, r.qty_dp), "cumQuote": fmt(o.quote, 5),
               "timeInForce": o.tif or "GTC", "type": o.type, "reduceOnly": o.reduce_only,
               "closePosition": False, "side": o.side, "positionSide": o.position_side,
               "stopPrice": fmt(o.stop_price, r.price_dp), "workingType": "CONTRACT_PRICE",
               "priceProtect": False, "origType": o.type, "priceMatch": "NONE",
               "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
               "updateTime": o.update_time}
        if with_time:
            out["time"] = o.time
        return out

    def futures_trade(self, f: Fill) -> dict[str, Any]:
        r = self.engine.rules[f.symbol]
        return {"buyer": f.side == "BUY", "commission": fmt(f.commission),
                "commissionAsset": f.commission_asset, "id": f.trade_id, "maker": f.maker,
                "orderId": f.order_id, "price": fmt(f.price, r.price_dp),
                "qty": fmt(f.qty, r.qty_dp), "quoteQty": fmt(f.quote, 5),
                "realizedPnl": fmt(f.realized_pnl), "side": f.side,
                "positionSide": f.position_side, "symbol": f.symbol, "time": f.time}

    def _positions(self, acct: Account) -> list[Position]:
        """Every symbol's position rows (both sides in hedge mode), as Binance lists them."""
        sides = ("LONG", "SHORT") if acct.dual else ("BOTH",)
        return [acct.positions.get((s, side)) or Position(s, side)
                for s in self.engine.rules for side in sides]

    def position_row(self, acct: Account, pos: Position) -> dict[str, Any]:
        e = self.engine
        mark = e.last.get(pos.symbol, pos.entry)
        lev = acct.leverage.get(pos.symbol, e.default_leverage)
        upnl = e._upnl(pos)
        notional = pos.amt * mark
        return {"symbol": pos.symbol, "positionSide": pos.side, "positionAmt": fmt(pos.amt, 3),
                "entryPrice": fmt(pos.entry), "breakEvenPrice": fmt(pos.entry),
                "markPrice": fmt(mark), "unRealizedProfit": fmt(upnl),
                "liquidationPrice": "0", "isolatedMargin": "0", "notional": fmt(notional),
                "marginAsset": e.rules[pos.symbol].quote, "isolatedWallet": "0",
                "initialMargin": fmt(abs(notional) / lev),
                "maintMargin": fmt(abs(notional) * Decimal("0.004")),
                "positionInitialMargin": fmt(abs(notional) / lev),
                "openOrderInitialMargin": fmt(sum((o.margin for o in acct.orders
                                                   if o.is_open and o.symbol == pos.symbol),
                                                  ZERO)),
                "adl": 0, "bidNotional": "0", "askNotional": "0", "leverage": str(lev),
                "marginType": "cross", "isAutoAddMargin": "false",
                "maxNotionalValue": "1000000000", "updateTime": pos.update_time}

    def position_risk(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        rows = [self.position_row(acct, pos) for pos in self._positions(acct)
                if not p.get("symbol") or pos.symbol == p["symbol"]]
        return rows

    def _asset_row(self, acct: Account, asset: str) -> dict[str, Any]:
        e = self.engine
        wallet = acct.balance(asset)[0]
        upnl = sum((e._upnl(pos) for pos in acct.positions.values()), ZERO)
        avail = e.available(acct, asset)
        pos_margin = sum((e._pos_margin(acct, pos) for pos in acct.positions.values()), ZERO)
        order_margin = sum((o.margin for o in acct.orders if o.is_open), ZERO)
        return {"asset": asset, "walletBalance": fmt(wallet), "unrealizedProfit": fmt(upnl),
                "marginBalance": fmt(wallet + upnl), "maintMargin": "0.00000000",
                "initialMargin": fmt(pos_margin + order_margin),
                "positionInitialMargin": fmt(pos_margin),
                "openOrderInitialMargin": fmt(order_margin),
                "crossWalletBalance": fmt(wallet), "crossUnPnl": fmt(upnl),
                "availableBalance": fmt(avail), "maxWithdrawAmount": fmt(max(avail, ZERO)),
                "marginAvailable": True, "updateTime": acct.update_time}

    def futures_account(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        assets = sorted(acct.balances) or ["USDT"]
        rows = [self._asset_row(acct, a) for a in assets]
        usdt = self._asset_row(acct, "USDT")
        return {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True,
                "canWithdraw": True, "updateTime": 0, "multiAssetsMargin": False,
                "tradeGroupId": -1, "totalInitialMargin": usdt["initialMargin"],
                "totalMaintMargin": "0.00000000",
                "totalWalletBalance": usdt["walletBalance"],
                "totalUnrealizedProfit": usdt["unrealizedProfit"],
                "totalMarginBalance": usdt["marginBalance"],
                "totalPositionInitialMargin": usdt["positionInitialMargin"],
                "totalOpenOrderInitialMargin": usdt["openOrderInitialMargin"],
                "totalCrossWalletBalance": usdt["crossWalletBalance"],
                "totalCrossUnPnl": usdt["crossUnPnl"],
                "availableBalance": usdt["availableBalance"],
                "maxWithdrawAmount": usdt["maxWithdrawAmount"], "assets": rows,
                "positions": [self.position_row(acct, pos) for pos in self._positions(acct)
                              if pos.amt]}

    def futures_balance(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        return [{"accountAlias": "SgsR", "asset": a, "balance": row["walletBalance"],
                 "crossWalletBalance": row["crossWalletBalance"], "crossUnPnl": row["crossUnPnl"],
                 "availableBalance": row["availableBalance"],
                 "maxWithdrawAmount": row["maxWithdrawAmount"], "marginAvailable": True,
                 "updateTime": row["updateTime"]}
                for a in (sorted(acct.balances) or ["USDT"])
                for row in [self._asset_row(acct, a)]]

    #: Binance's first BTCUSDT brackets (notional caps in USDT): enough for ccxt's positions.
    BRACKETS = ((125, 50_000, 0, "0.004", "0.0"), (100, 600_000, 50_000, "0.005", "50.0"),
                (75, 3_000_000, 600_000, "0.0065", "950.0"),
                (50, 12_000_000, 3_000_000, "0.01", "11450.0"))

    def leverage_brackets(self, acct: Account, p: dict[str, str], now: int) -> Any:
        rows = [{"symbol": s, "notionalCoef": 1.0, "brackets": [
            {"bracket": i + 1, "initialLeverage": lev, "notionalCap": cap,
             "notionalFloor": floor, "maintMarginRatio": float(mmr), "cum": float(cum)}
            for i, (lev, cap, floor, mmr, cum) in enumerate(self.BRACKETS)]}
            for s in self.engine.rules if not p.get("symbol") or s == p["symbol"]]
        return rows[0] if p.get("symbol") else rows

    def leverage(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        symbol = p.get("symbol", "")
        lev = self.engine.set_leverage(acct.key, symbol, int(p.get("leverage", "0") or 0))
        return {"leverage": lev, "maxNotionalValue": "1000000000", "symbol": symbol}

    def set_dual(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        self.engine.set_dual(acct.key, p.get("dualSidePosition", "false").lower() == "true")
        return {"code": 200, "msg": "success"}

    def get_dual(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        return {"dualSidePosition": acct.dual}

    # --- USDT-M conditional orders (the Algo Order API) ----------------------------------------

    def new_algo(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        if p.get("algoType") != "CONDITIONAL":
            raise BinanceError(-1102, "Mandatory parameter 'algoType' was not sent, was "
                                      "empty/null, or malformed.")
        params = {k: v for k, v in p.items()
                  if k not in ("algoType", "triggerPrice", "clientAlgoId", "orderType")}
        params["type"] = p.get("type") or p.get("orderType", "")
        if "triggerPrice" in p:
            params["stopPrice"] = p["triggerPrice"]
        if p.get("clientAlgoId"):
            params["newClientOrderId"] = p["clientAlgoId"]
        return self.algo_order(self.engine.new_order(acct.key, params, now, algo=True))

    def _algo(self, acct: Account, p: Mapping[str, str]) -> Order:
        aid, cid = p.get("algoId"), p.get("clientAlgoId")
        for o in reversed(acct.orders):
            if o.algo and (str(o.order_id) == aid if aid else o.client_id == cid):
                return o
        raise BinanceError(-2013, "Order does not exist.")

    def query_algo(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        return self.algo_order(self._algo(acct, p))

    def cancel_algo(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        try:
            order = self._algo(acct, p)
        except BinanceError:
            raise BinanceError(-2011, "Unknown order sent.") from None
        self.engine.cancel(acct.key, order.symbol, now, order.order_id)
        return {"algoId": order.order_id, "clientAlgoId": order.client_id, "code": "200",
                "msg": "success"}

    def open_algos(self, acct: Account, p: dict[str, str], now: int) -> list[dict[str, Any]]:
        return [self.algo_order(o) for o in acct.orders if o.algo and o.is_open
                and not o.triggered and (not p.get("symbol") or o.symbol == p["symbol"])]

    def cancel_algos(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        symbol = p.get("symbol", "")
        self.engine.rules_of(symbol)
        for o in list(acct.orders):
            if o.algo and o.is_open and not o.triggered and o.symbol == symbol:
                self.engine.cancel(acct.key, symbol, now, o.order_id)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def algo_order(self, o: Order) -> dict[str, Any]:
        r = self.engine.rules[o.symbol]
        # Waiting: NEW; triggered: the order it became works (TRIGGERED), then FINISHED.
        status = ("NEW" if not o.triggered else "TRIGGERED") if o.is_open else (
            "FINISHED" if o.status == "FILLED" else o.status)
        return {"algoId": o.order_id, "clientAlgoId": o.client_id, "algoType": "CONDITIONAL",
                "orderType": o.type, "symbol": o.symbol, "side": o.side,
                "positionSide": o.position_side, "timeInForce": o.tif or "GTC",
                "quantity": fmt(o.qty, r.qty_dp), "algoStatus": status,
                "triggerPrice": fmt(o.stop_price, r.price_dp), "price": fmt(o.price, r.price_dp),
                "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
                "workingType": "CONTRACT_PRICE", "priceMatch": "NONE", "closePosition": False,
                "priceProtect": False, "reduceOnly": o.reduce_only, "createTime": o.time,
                "updateTime": o.update_time, "triggerTime": o.update_time if o.triggered else 0,
                "goodTillDate": 0}

    # --- user stream ---------------------------------------------------------------------------

    def user_stream(self, acct: Account, p: dict[str, str], now: int) -> dict[str, Any]:
        # POST makes (or returns the existing) key; PUT keeps it alive; DELETE closes it.
        return {"listenKey": self.listen_key(acct.key, p.get("listenKey", ""))}


def new_listen_key() -> str:
    """A listen key as Binance's look: 64 random letters and digits."""
    return secrets.token_urlsafe(48).replace("-", "a").replace("_", "b")[:64]


__all__ = ["PrivateApi", "fmt", "new_listen_key", "sign"]
