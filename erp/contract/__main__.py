"""`python -m erp.contract --url URL --key KEY`: run the contract checks, exit 1 on any failure."""

from __future__ import annotations

import argparse
import os
import sys

from erp.contract.checks import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m erp.contract", description=__doc__)
    parser.add_argument("--url", required=True, help="base URL of the implementation under test")
    parser.add_argument(
        "--key", default=os.environ.get("ERP_CONTRACT_KEY"), help="bot-scope key (or ERP_CONTRACT_KEY)"
    )
    parser.add_argument(
        "--admin-key", default=os.environ.get("ERP_CONTRACT_ADMIN_KEY"), help="admin-scope key"
    )
    parser.add_argument("--read-only", action="store_true", help="skip the checks that create records")
    args = parser.parse_args()
    if not args.key:
        parser.error("--key (or ERP_CONTRACT_KEY) is required")
    results = run(args.url, args.key, args.admin_key, args.read_only)
    for result in results:
        print(f"{'PASS' if result.ok else 'FAIL'}  {result.name}  ({result.detail})")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
