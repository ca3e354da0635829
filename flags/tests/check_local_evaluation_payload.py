#!/usr/bin/env python3
"""Feed Quill's local-evaluation payload to the real posthog-python client.

The oracle flags are turned into the payload Quill serves (with the `dependency_chain`s it
computes), published into a posthog-python client exactly as a fetch would, and every oracle
case is evaluated locally by the client. Each answer must equal the fixture's.

    QUILL_LOCAL_EVAL_OUT=/tmp/payload.json cargo test -p quill-flags --test sdk_oracle
    .venv/bin/python flags/tests/check_local_evaluation_payload.py /tmp/payload.json

Relative-date filters resolve against today, so run it soon after regenerating the fixture.
"""

import json
import pathlib
import sys

from posthog import Posthog
from posthog.feature_flags import InconclusiveMatchError, RequiresServerEvaluation

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "sdk_oracle.json"


def main():
    payload = json.load(open(sys.argv[1]))
    fixture = json.load(FIXTURE.open())
    client = Posthog("phc_quill", host="http://127.0.0.1:9", sync_mode=True)
    client._update_flag_state(payload)
    by_key = {f["key"]: f for f in payload["flags"]}
    failed = 0
    for case in fixture["cases"]:
        try:
            got = client._compute_flag_locally(
                by_key[case["flag"]],
                case["distinct_id"],
                groups=case.get("groups", {}),
                person_properties=case["properties"],
                group_properties=case.get("group_properties", {}),
                warn_on_unknown_groups=False,
            )
        except (InconclusiveMatchError, RequiresServerEvaluation):
            got = "<inconclusive>"
        if got != case["expected"]:
            failed += 1
            if failed <= 20:
                print(f"{case['flag']} {case['distinct_id']}: sdk {got!r}, "
                      f"fixture {case['expected']!r}")
    passed = len(fixture["cases"]) - failed
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
