"""The reference side of tests/cron_reference.rs: the next fire times of cron expressions, by
cronsim (a cron evaluator written to match Debian's cron, DST handling included).

Reads JSON lines {"expr", "zone", "start", "count"} on stdin, writes one JSON line per case:
{"fires": [UTC RFC 3339, ...]} or {"error": "..."}.

cronsim has no macros: they are expanded as Debian's entry.c sets their bits and flags, which is
what these five-field expressions mean in Debian's cron (the `*` in day-of-week of `@monthly` is
its DOW_STAR, the `*` in the hour of `@hourly` its HR_STAR).
"""

import json
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from cronsim import CronSim

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def fires(expr, zone, start, count):
    expr = MACROS.get(expr.strip(), expr)
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    it = CronSim(expr, start.astimezone(tz))
    found = []
    # cronsim walks fixed-time jobs in naive local time: started inside a repeated hour, it
    # first yields that hour's first occurrence, before `start`. Debian's cron does not run those
    # again, so they are not fire times after `start`.
    for _ in range(count * 4):
        if len(found) == count:
            break
        try:
            at = next(it).astimezone(timezone.utc)
        except StopIteration:
            break
        if at > start and (not found or at > found[-1]):
            found.append(at)
    return [at.strftime("%Y-%m-%dT%H:%M:%SZ") for at in found]


def main():
    for line in sys.stdin:
        case = json.loads(line)
        try:
            out = {"fires": fires(case["expr"], case["zone"], case["start"], case["count"])}
        except Exception as err:  # noqa: BLE001 - reported to the test, which decides
            out = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
