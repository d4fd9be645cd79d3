"""Checks moto_serialized.py's changes to moto, in-process. TransactWriteItems: a cancelled
transaction leaves every item it named as it was (put, updated, deleted), a committed one applies
all of them. Fair queues: a tenant below the noisy thresholds keeps first-in-first-out order; once
it has 30+ messages in flight, or most of the recent processing time, a quiet tenant's later
messages are received before its backlog. Run by `make test` (step "moto patch"); prints the time of
a 100-item transaction on a 5,000-item table as a figure, not a verdict.

usage: python moto_serialized_check.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moto_serialized  # noqa: E402,F401  (installs the per-item rollback)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.sqs.models import sqs_backends  # noqa: E402

TABLE = "check"


def key(pk, sk):
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def main():
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        db.put_item(TableName=TABLE, Item={**key("a", "1"), "v": {"N": "1"}})
        for i in range(5000):
            db.put_item(TableName=TABLE, Item=key("big", str(i)))

        cancelled = False
        try:
            db.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": TABLE, "Item": {**key("a", "2"), "v": {"N": "2"}}}},
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": key("a", "1"),
                            "UpdateExpression": "SET v = :v",
                            "ExpressionAttributeValues": {":v": {"N": "9"}},
                        }
                    },
                    {"Delete": {"TableName": TABLE, "Key": key("big", "3")}},
                    {
                        "Put": {
                            "TableName": TABLE,
                            "Item": key("b", "1"),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                ]
            )
        except db.exceptions.TransactionCanceledException as e:
            reasons = [r["Code"] for r in e.response["CancellationReasons"]]
            assert reasons == ["None", "None", "None", "ConditionalCheckFailed"], reasons
            cancelled = True
        assert cancelled, "a failed condition cancels the transaction"
        a = db.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :a",
            ExpressionAttributeValues={":a": {"S": "a"}},
        )["Items"]
        assert [(i["sk"]["S"], i["v"]["N"]) for i in a] == [("1", "1")], a
        assert "Item" in db.get_item(TableName=TABLE, Key=key("big", "3"))
        assert "Item" not in db.get_item(TableName=TABLE, Key=key("b", "1"))
        print("cancelled transaction: every named item as it was")

        started = time.monotonic()
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": key("big", f"new-{i}")}} for i in range(100)
            ]
        )
        took = time.monotonic() - started
        db.transact_write_items(
            TransactItems=[{"Delete": {"TableName": TABLE, "Key": key("a", "1")}}]
        )
        assert "Item" not in db.get_item(TableName=TABLE, Key=key("a", "1"))
        assert "Item" in db.get_item(TableName=TABLE, Key=key("big", "new-99"))
        print("committed transactions: applied")
        print(f"100-item transaction on a 5,000-item table: {took * 1000:.0f} ms")

        check_fair_queue()


def send(sqs, url, group, n):
    for start in range(0, n, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": f"{group}-{start + i}", "MessageGroupId": group}
                for i in range(min(10, n - start))
            ],
        )


def receive(sqs, url, n):
    bodies = []
    while len(bodies) < n:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, n - len(bodies)))
        bodies += [m["Body"] for m in got.get("Messages", [])]
    return bodies


def check_processing_time_share(sqs):
    """A tenant with one message in flight at a time, but all of the consumers' recent
    processing time (one lead per invocation), is noisy too: the quiet tenant's messages, sent
    after its backlog, are received before the rest of it."""
    url = sqs.create_queue(QueueName="fair-time")["QueueUrl"]
    send(sqs, url, "slow", 5)
    send(sqs, url, "quiet", 2)
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert [m["Body"] for m in first] == ["slow-0"], first
    # Nothing processed yet: the queue's order stands.
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert [m["Body"] for m in second] == ["slow-1"], second
    for m in first + second:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    # The slow tenant has all of the recent processing time.
    after = receive(sqs, url, 3)
    assert after == ["quiet-0", "quiet-1", "slow-2"], after
    print("fair queue: a tenant with most of the processing time yields to a quiet one")


def check_fair_queue():
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="fair")["QueueUrl"]
    send(sqs, url, "noisy", 100)
    send(sqs, url, "quiet", 5)
    # Up to 29 in flight is below the noisy threshold: the queue's order stands.
    first = receive(sqs, url, 30)
    assert first == [f"noisy-{i}" for i in range(30)], first
    # 30 in flight, all the noisy tenant's: the quiet tenant's messages come first.
    second = receive(sqs, url, 10)
    assert second[:5] == [f"quiet-{i}" for i in range(5)], second
    assert second[5:] == [f"noisy-{i}" for i in range(30, 35)], second
    print("fair queue: a quiet tenant's messages pass a noisy tenant's backlog")
    check_processing_time_share(sqs)

    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "65", counts
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "40", counts
    assert counts["ApproximateNumberOfMessagesDelayed"] == "1", counts
    print("counts: waiting, in flight and delayed messages")

    # Retention still holds: a message older than the queue's retention period is not received.
    url = sqs.create_queue(QueueName="short", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    sqs.send_message(QueueUrl=url, MessageBody="expired")
    backend = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for message in backend.get_queue("short")._messages:
        if message.body == "expired":
            message.sent_timestamp -= 120_000
    got = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert got == ["kept"], got
    print("retention: a message past the queue's retention period is not received")


if __name__ == "__main__":
    main()
