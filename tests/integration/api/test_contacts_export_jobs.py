"""Contacts export as an asynchronous job: the API only queues it (a large workspace takes longer than
API Gateway's 29 s), the contacts job worker writes the file, and a worker that dies mid-export and
is re-run leaves one complete file; a redelivered message after completion does nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from relasify.data.contacts import contact_repository
from relasify.services import exports
from relasify_local.cfn import REPO_ROOT, load_template
from relasify_local.runtime import functions_from_template

from tests.support.api import ApiClient, run_import_worker

OWNER = "owner@example.com"
ADMIN = "admin@example.com"  # bulk export and imports are admin+ (SPEC section 3)
CONTACTS = 7


def _seed(api: ApiClient) -> str:
    ws = api.create_workspace(OWNER)
    api.add_member(ws, OWNER, ADMIN, "admin")
    for n in range(CONTACTS):
        created = api.post(
            f"/v1/workspaces/{ws}/contacts", {"phone": f"08123456{7800 + n}", "name": f"C{n}"}, as_user=ADMIN
        )
        assert created.status == 201, created.body
    return ws


def _queued_records() -> list[dict[str, Any]]:
    """Take the queued messages off the import queue as Lambda's event source would."""
    sqs = boto3.client("sqs")
    url = __import__("os").environ["IMPORT_QUEUE_URL"]
    records = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []:
        for message in messages:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:ap-southeast-3:123456789012:import",
                    "awsRegion": "ap-southeast-3",
                }
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return records


def _fails(worker: Any, record: dict[str, Any]) -> None:
    """The record fails (a batch whose every record failed is raised whole by Powertools: SQS retries it)."""
    with pytest.raises(BatchProcessingError):
        worker.invoke({"Records": [record]})


def _objects(bucket: str, ws: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"exports/{ws}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_the_request_only_queues_the_export(api: ApiClient, aws_resources) -> None:
    ws = _seed(api)
    response = api.get(f"/v1/workspaces/{ws}/contacts/export?format=json", as_user=ADMIN)
    assert response.status == 202
    job = api.get(response.headers["location"], as_user=ADMIN)
    assert job.status == 200
    assert job.json["status"] == "queued"
    assert job.json["url"] is None
    assert job.json["count"] == 0
    assert _objects(aws_resources.media_bucket, ws) == []  # nothing written inside the request
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    assert not [e for e in audit if e["action"].startswith("contacts.export")]  # no URL handed out yet


def test_every_url_handed_out_is_security_logged(api: ApiClient, aws_resources) -> None:
    ws = _seed(api)
    done = api.export_contacts(ws, "csv", as_user=ADMIN)
    assert done["status"] == "completed"
    assert done["count"] == CONTACTS
    again = api.get(f"/v1/workspaces/{ws}/contacts/exports/{done['id']}", as_user=ADMIN).json
    assert again["url"]
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    assert len([e for e in audit if e["action"] == "contacts.exported"]) == 1
    assert len([e for e in audit if e["action"] == "contacts.export_downloaded"]) == 2


def test_unknown_export_is_404_problem(api: ApiClient, aws_resources) -> None:
    ws = _seed(api)
    missing = api.get(f"/v1/workspaces/{ws}/contacts/exports/doesnotexist", as_user=ADMIN)
    assert missing.status == 404
    assert missing.content_type.startswith("application/problem+json")


def test_an_export_of_another_workspace_is_not_found(api: ApiClient, aws_resources) -> None:
    ws = _seed(api)
    done = api.export_contacts(ws, "csv", as_user=ADMIN)
    other = api.create_workspace(OWNER, "Other")
    assert api.get(f"/v1/workspaces/{other}/contacts/exports/{done['id']}", as_user=OWNER).status == 404


def test_worker_killed_mid_export_and_rerun_leaves_one_complete_file(
    api: ApiClient, aws_resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _seed(api)
    response = api.get(f"/v1/workspaces/{ws}/contacts/export?format=json", as_user=ADMIN)
    assert response.status == 202
    worker = functions_from_template(load_template(), REPO_ROOT)["ImportWorkerFunction"]
    (record,) = _queued_records()

    real_repository = contact_repository()

    class DiesAfterThree:
        def iter_contacts(self, ws: str) -> Iterator[Any]:
            for n, contact in enumerate(real_repository.iter_contacts(ws)):
                if n == 3:
                    raise RuntimeError("worker killed mid-export")
                yield contact

    monkeypatch.setattr(exports, "contact_repository", lambda: DiesAfterThree())
    _fails(worker, record)
    job = api.get(response.headers["location"], as_user=ADMIN).json
    assert job["status"] == "running"
    assert job["url"] is None
    assert _objects(aws_resources.media_bucket, ws) == []  # no partial file was published

    monkeypatch.undo()
    assert worker.invoke({"Records": [record]}) == {"batchItemFailures": []}  # SQS redelivers the message
    assert worker.invoke({"Records": [record]}) == {"batchItemFailures": []}  # and once more: nothing to do
    job = api.get(response.headers["location"], as_user=ADMIN).json
    assert job["status"] == "completed"
    assert job["count"] == CONTACTS
    (key,) = _objects(aws_resources.media_bucket, ws)
    assert urlsplit(job["url"]).path.endswith(key)
    documents = json.loads(boto3.client("s3").get_object(Bucket=aws_resources.media_bucket, Key=key)["Body"].read())
    assert sorted(d["name"] for d in documents) == sorted(f"C{n}" for n in range(CONTACTS))
    audit = api.get(f"/v1/workspaces/{ws}/audit", as_user=OWNER).json["items"]
    assert len([e for e in audit if e["action"] == "contacts.exported"]) == 1  # the redelivery wrote no second entry


def test_a_job_that_keeps_dying_ends_failed(api: ApiClient, aws_resources, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _seed(api)
    location = api.get(f"/v1/workspaces/{ws}/contacts/export?format=csv", as_user=ADMIN).headers["location"]
    worker = functions_from_template(load_template(), REPO_ROOT)["ImportWorkerFunction"]
    (record,) = _queued_records()

    class AlwaysDies:
        def iter_contacts(self, ws: str) -> Iterator[Any]:
            raise RuntimeError("boom")
            yield  # pragma: no cover

    monkeypatch.setattr(exports, "contact_repository", lambda: AlwaysDies())
    for _ in range(exports.MAX_ATTEMPTS):
        _fails(worker, record)
    assert worker.invoke({"Records": [record]}) == {"batchItemFailures": []}
    job = api.get(location, as_user=ADMIN).json
    assert job["status"] == "failed"
    assert job["failure_reason"]
    assert job["url"] is None
    run_import_worker()  # nothing else queued
