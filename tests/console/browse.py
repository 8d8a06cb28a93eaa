#!/usr/bin/env python3
"""Drives a real headless Chromium through the DevTools protocol (over the
`websockets` client) for the console's tests and its measurement.

Reads a JSON plan on stdin:
  {"chromium": "/usr/bin/chromium", "profile": "/tmp/p", "steps": [
     {"goto": "http://...", "width": 1280, "height": 900},
     {"wait": "<JS expression>", "timeout": 10},
     {"eval": "<JS expression, awaited>"},
     {"screenshot": "/path.png", "full": true}]}   (false: the viewport only)
and prints {"results": [one per step], "errors": [console errors, CSP
violations, uncaught exceptions]} on stdout. A step that fails (a wait that
times out, an expression that throws) ends the run with exit status 1 and
the reason on stderr.
"""
import asyncio
import base64
import itertools
import json
import re
import subprocess
import sys

import websockets


class Browser:
    def __init__(self, ws):
        self.ws, self.ids, self.pending, self.errors, self.session = ws, itertools.count(1), {}, [], None

    async def pump(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
            elif msg.get("method") == "Runtime.exceptionThrown":
                d = msg["params"]["exceptionDetails"]
                self.errors.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
            elif msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] == "error":
                self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in msg["params"]["args"]))
            elif msg.get("method") == "Log.entryAdded" and msg["params"]["entry"]["level"] == "error":
                self.errors.append("log: " + msg["params"]["entry"]["text"])

    async def call(self, method, **params):
        i = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        msg = {"id": i, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def evaluate(self, expression):
        r = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} threw: {r['exceptionDetails'].get('exception', {}).get('description', r['exceptionDetails'])}")
        return r["result"].get("value")


async def step(b, s):
    if "goto" in s:
        width, height = s.get("width", 1280), s.get("height", 900)
        await b.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=width < 600)
        await b.call("Page.navigate", url=s["goto"])
        return None
    if "wait" in s:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < s.get("timeout", 10):
            try:
                if await b.evaluate(s["wait"]):
                    return round((loop.time() - start) * 1000, 1)
            except RuntimeError:
                pass  # the page is still loading
            await asyncio.sleep(0.05)
        raise RuntimeError(f"waited {s.get('timeout', 10)} s for {s['wait']!r}; page: {await b.evaluate('document.body && document.body.innerText')!r}")
    if "eval" in s:
        return await b.evaluate(s["eval"])
    if "screenshot" in s:
        shot = await b.call("Page.captureScreenshot", format="png", captureBeyondViewport=s.get("full", True))
        with open(s["screenshot"], "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return s["screenshot"]
    raise RuntimeError(f"unknown step {s}")


async def main():
    plan = json.load(sys.stdin)
    args = [plan.get("chromium", "chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", "--remote-debugging-port=0", f"--user-data-dir={plan['profile']}", "about:blank"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
                break
        if not url:
            raise RuntimeError("chromium did not start its DevTools endpoint")
        async with websockets.connect(url, max_size=64 * 1024 * 1024) as ws:
            b = Browser(ws)
            pump = asyncio.create_task(b.pump())
            target = (await b.call("Target.createTarget", url="about:blank"))["targetId"]
            b.session = (await b.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                await b.call(f"{domain}.enable")
            results = [await step(b, s) for s in plan["steps"]]
            pump.cancel()
            print(json.dumps({"results": results, "errors": b.errors}))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - reported to the test
        print(f"browse.py: {e}", file=sys.stderr)
        sys.exit(1)
