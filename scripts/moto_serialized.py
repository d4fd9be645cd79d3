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

And it makes a standard queue whose messages carry a MessageGroupId behave as an SQS fair queue,
which moto does not emulate (it delivers first in, first out): a tenant (message group; a message
without one is a tenant of its own) with at least 30 messages in flight and more than 10 % of the
queue's in-flight messages is a noisy neighbour, and so is a tenant with more than 10 % of the
consumers' recent processing time; a receive returns quiet tenants' messages before a noisy
one's, noisy ones with the fewest in flight first. These are AWS's documented rules ("How Amazon
SQS fair queues work": concurrency share, processing-time share). AWS does not say how recent
"recent" is: here it is the last minute, and a message's processing time runs from its last
receive to its delete (a message left to its visibility timeout is not counted).

Last, a receive checks each message's retention by reading that one queue attribute, where moto
computes every attribute of the queue (counting all its messages) once per message received: a
ReceiveMessage on a queue of 2,000 messages was 91 % of moto's time in the load bench.

usage: python moto_serialized.py HOST PORT
"""

import copy
import os
import sys
import threading
import time
from collections import Counter, deque

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import DomainDispatcherApplication, create_backend_app
from moto.core.utils import unix_time, unix_time_millis
from moto.sqs.models import Queue, SQSBackend
from werkzeug.serving import run_simple

class FirstComeLock:
    """A lock taken in the order it was asked for. threading.Lock wakes an arbitrary waiter, so
    under load one client's calls could wait behind many later ones; AWS serves independent
    requests side by side, and first come, first served is the nearer one-at-a-time stand-in."""

    def __init__(self):
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self):
        with self._turns:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._turns.wait()

    def __exit__(self, *exc):
        with self._turns:
            self._serving += 1
            self._turns.notify_all()


LOCK = FirstComeLock()


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

# AWS's thresholds for a noisy neighbour by concurrency share...
NOISY_MIN_IN_FLIGHT = 30
NOISY_SHARE = 0.10
# ...and by processing-time share, over this recent past.
NOISY_PROCESSING_SHARE = 0.10
PROCESSING_WINDOW_MS = 60_000


# moto reads the clock (through datetime) twice per message whenever it filters a queue's
# messages, and every send reads all of the queue's attributes, counts included: one reading per
# filter gives the same answers in a fraction of the time.
def _ready_messages(self):
    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]


def _count_delayed(self):
    now = unix_time_millis()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _count_not_visible(self):
    now = unix_time_millis()
    return sum(1 for m in self._messages if now <= m.visible_at)


Queue.approximate_number_of_messages_delayed = property(_count_delayed)
Queue.approximate_number_of_messages_not_visible = property(_count_not_visible)


def _tenant(message):
    return message.group_id if message.group_id is not None else ("solo", message.id)


_receiving = threading.local()


# Receipts handed out and not yet deleted, per queue: receipt handle -> (tenant, received at).
# A receipt whose message is received again or never deleted is dropped once this many are held.
RECEIPTS_HELD = 100_000


def note_received(queue, messages):
    receipts = queue.__dict__.setdefault("receipts", {})
    now = unix_time_millis()
    for message in messages:
        receipts[message.receipt_handle] = (_tenant(message), now)
    while len(receipts) > RECEIPTS_HELD:
        receipts.pop(next(iter(receipts)))


_queue_delete_message = Queue.delete_message


def delete_message(self, receipt_handle):
    """moto's delete, noting how long the consumer had the message (at least 1 ms)."""
    _queue_delete_message(self, receipt_handle)
    received = self.__dict__.get("receipts", {}).pop(receipt_handle, None)
    if received is not None:
        tenant, at = received
        now = unix_time_millis()
        processed = self.__dict__.setdefault("processed", deque())
        processed.append((now, tenant, max(now - at, 1)))


Queue.delete_message = delete_message


def recent_processing(queue, now):
    """Processing time per tenant over the recent window (older entries dropped)."""
    processed = queue.__dict__.get("processed")
    if not processed:
        return Counter()
    while processed and processed[0][0] < now - PROCESSING_WINDOW_MS:
        processed.popleft()
    spent = Counter()
    for _, tenant, took in processed:
        spent[tenant] += took
    return spent


def fair_messages(self):
    """The queue's receivable messages; in the order a receive takes them during a receive
    (counting them, as every send and attribute read does, needs no order)."""
    ready = _ready_messages(self)
    if self.fifo_queue or not getattr(_receiving, "now", False):
        return ready
    now = unix_time_millis()
    in_flight = Counter(_tenant(m) for m in self._messages if now <= m.visible_at)
    total = sum(in_flight.values())
    spent = recent_processing(self, now)
    total_spent = sum(spent.values())

    def order(message):
        tenant = _tenant(message)
        n = in_flight[tenant]
        noisy = (n >= NOISY_MIN_IN_FLIGHT and n > NOISY_SHARE * total) or (
            spent[tenant] > NOISY_PROCESSING_SHARE * total_spent
        )
        return (1, n) if noisy else (0, 0)

    # sorted() is stable: within each rank, the queue's own order stands.
    return sorted(ready, key=order)


Queue.messages = property(fair_messages)
_receive_message = SQSBackend.receive_message


def receive_message(self, queue_name, *args, **kwargs):
    _receiving.now = True
    try:
        messages = _receive_message(self, queue_name, *args, **kwargs)
    finally:
        _receiving.now = False
    note_received(self.get_queue(queue_name), messages)
    return messages


SQSBackend.receive_message = receive_message


def within_retention(self, queue_name, message):
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = within_retention
APP = DomainDispatcherApplication(create_backend_app)


# MOTO_TIMINGS=FILE: one line per request (operation, ms waiting for the lock, ms of work), to
# see where a benchmark's time goes.
TIMINGS = open(os.environ["MOTO_TIMINGS"], "a", buffering=1) if os.environ.get("MOTO_TIMINGS") else None


def serialised(environ, start_response):
    arrived = time.monotonic()
    with LOCK:
        started = time.monotonic()
        # Drain the response inside the lock: the backend's work happens while iterating.
        body = list(APP(environ, start_response))
        if TIMINGS:
            operation = environ.get("HTTP_X_AMZ_TARGET") or environ.get("QUERY_STRING", "")[:40]
            TIMINGS.write(
                f"{operation}\t{(started - arrived) * 1000:.1f}\t{(time.monotonic() - started) * 1000:.1f}\n"
            )
        return body


if __name__ == "__main__":
    run_simple(sys.argv[1], int(sys.argv[2]), serialised, threaded=True, use_reloader=False)
