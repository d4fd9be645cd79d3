"""moto's server with one request at a time.

moto_server is threaded and its DynamoDB backend takes no lock, so two concurrent conditional
writes can both pass their condition. Real DynamoDB evaluates a condition and writes atomically;
the relay's leases and claims rely on it. Serialising requests restores that guarantee locally,
while the threaded server still accepts every connection (keep-alive clients never starve).

It also makes TransactWriteItems cost what it touches. moto 5.2.5 backs up the whole table with
a deep copy once per item of a transaction, so that it can roll back; a 100-item transaction on a
table of 10,000 items copies a million items, holding the lock above for tens of seconds and
every other call with it (the load bench measured 67 s per lead-push invocation). Here the items a
transaction names are saved once each before it runs, and put back if it is cancelled: the same
all-or-nothing result, in time proportional to the transaction, as on AWS.

usage: python moto_serialized.py HOST PORT
"""

import copy
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

LOCK = threading.Lock()


class _TablesNotCopied:
    """`copy` as moto's DynamoDB backend sees it: a whole Table is not copied (only
    transact_write_items asks for that, and its rollback is done per item below)."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


dynamodb_models.copy = _TablesNotCopied()
_transact_write_items = DynamoDBBackend.transact_write_items


def _named_items(backend, transact_items):
    """(table, hash, range, saved item or None) for each item the transaction names, once."""
    saved, seen = [], set()
    for entry in transact_items:
        for op in entry.values():
            table = backend.tables.get(op.get("TableName"))
            key = op.get("Item") if "Item" in op else op.get("Key")
            if table is None or not key or table.hash_key_attr not in key:
                continue  # moto refuses it itself, before anything is written
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in key:
                    continue
                range_value = DynamoType(key[table.range_key_attr])
            identity = (id(table), str(hash_value), str(range_value))
            if identity in seen:
                continue
            seen.add(identity)
            try:
                current = table.get_item(hash_value, range_value)
            except Exception:  # a malformed key: moto refuses the transaction before writing
                continue
            saved.append((table, hash_value, range_value, copy.deepcopy(current)))
    return saved


def _put_back(saved):
    for table, hash_value, range_value, item in reversed(saved):
        items = table.items[hash_value] if range_value is not None else table.items
        slot = range_value if range_value is not None else hash_value
        if item is None:
            items.pop(slot, None)
        else:
            items[slot] = item
        if range_value is not None and not table.items[hash_value]:
            del table.items[hash_value]


def transact_write_items(self, transact_items):
    saved = _named_items(self, transact_items)
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        _put_back(saved)
        raise


DynamoDBBackend.transact_write_items = transact_write_items
APP = DomainDispatcherApplication(create_backend_app)


def serialised(environ, start_response):
    with LOCK:
        # Drain the response inside the lock: the backend's work happens while iterating.
        return list(APP(environ, start_response))


if __name__ == "__main__":
    run_simple(sys.argv[1], int(sys.argv[2]), serialised, threaded=True, use_reloader=False)
