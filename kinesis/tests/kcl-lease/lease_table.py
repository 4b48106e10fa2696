#!/usr/bin/env python3
"""Reads a scan of a KCL lease table ({"Items": [...]} in DynamoDB JSON, as awsjson.py
scan-all prints it) on standard input.

  lease_table.py show         a readable table: leaseKey, owner, counter, owner switches,
                              checkpoint (sub-sequence), parents, checkpointOwner if
                              any; other items by entityType
  lease_table.py check EXPR   exit 0 when the Python expression EXPR holds, with `leases` the
                              lease items (dicts attribute -> DynamoDB JSON value) and
                              s(item, name) the string value of an attribute (None if absent)
"""
import json
import sys


def value(item, name):
    """The attribute's value whatever its type (S, N, SS, ...), or None."""
    if name not in item:
        return None
    return next(iter(item[name].values()))


def s(item, name):
    return item.get(name, {}).get("S")


def is_lease(item):
    return "leaseCounter" in item and item.get("entityType", {}).get("S", "LEASE") == "LEASE"


def show(items):
    print(f"{'leaseKey':22} {'leaseOwner':10} {'counter':>7} {'switches':>8}  checkpoint (sub)  parents  [checkpointOwner]")
    for i in items:
        if not is_lease(i):
            print(f"{s(i, 'leaseKey'):22} (entityType {s(i, 'entityType')})")
            continue
        parents = ",".join(sorted(value(i, "parentShardId") or [])) or "-"
        print(
            f"{s(i, 'leaseKey'):22} {s(i, 'leaseOwner') or '-':10} {value(i, 'leaseCounter'):>7} "
            f"{value(i, 'ownerSwitchesSinceCheckpoint'):>8}  {s(i, 'checkpoint')} "
            f"({value(i, 'checkpointSubSequenceNumber')})  {parents}"
            + (f"  [{s(i, 'checkpointOwner')}]" if "checkpointOwner" in i else "")
        )


def main(argv):
    items = json.load(sys.stdin)["Items"]
    if argv[1:] == ["show"]:
        show(items)
        return 0
    if len(argv) == 3 and argv[1] == "check":
        leases = [i for i in items if is_lease(i)]
        return 0 if eval(argv[2], {"leases": leases, "s": s, "value": value}) else 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
