"""`ContentStore` on an S3-compatible bucket (AWS S3, MinIO...): each text is an object named by its SHA-256.

Invariants: the same references as `FileContentStore` (`sha256:<64 hex>`; nothing else is accepted, so a
reference can never name another key); an object is written whole or not at all, so workers storing the
same content at once are harmless and a reader never sees a partial text; an absent text is a KeyError.
The client is made on first use (building the store connects to nothing) and makes no retries of its own:
Temporal retries the activity. Credentials come from boto3's chain (AWS_ACCESS_KEY_ID... or a role).
"""

from __future__ import annotations

import threading

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from contracts.errors import ErrorType
from core.hashing import sha256_text
from stores.content_files import REF_PREFIX, digest_of
from stores.protocols import StoreError

# Error codes that retrying cannot fix: the bucket or the credentials are wrong.
_CONFIG_ERRORS = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


class S3ContentStore:
    """Content-addressed text objects under `prefix` in `bucket`."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, prefix: str = "content/", region: str | None = None) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix
        self.region = region
        self._client = None
        self._lock = threading.Lock()

    def _s3(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    config = Config(
                        connect_timeout=5,
                        read_timeout=60,
                        retries={"total_max_attempts": 1, "mode": "standard"},
                        # Path-style keys: MinIO and most S3-compatible servers have no per-bucket DNS names.
                        s3={"addressing_style": "path"} if self.endpoint_url else None,
                    )
                    # A session per store: boto3's default session is not thread-safe to create clients from.
                    self._client = boto3.session.Session().client(
                        "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
                    )
        return self._client

    def put(self, text: str) -> str:
        digest = sha256_text(text)
        try:
            self._s3().put_object(
                Bucket=self.bucket, Key=self.prefix + digest, Body=text.encode("utf-8"), ContentType="text/plain; charset=utf-8"
            )
        except (BotoCoreError, ClientError) as err:
            raise self._failure(err) from err
        return REF_PREFIX + digest

    def get(self, ref: str) -> str:
        key = self.prefix + digest_of(ref)
        try:
            body = self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(ref) from None
            raise self._failure(err) from err
        except BotoCoreError as err:
            raise self._failure(err) from err
        return body.decode("utf-8")

    def _failure(self, err: BotoCoreError | ClientError) -> StoreError:
        code = err.response.get("Error", {}).get("Code", "") if isinstance(err, ClientError) else ""
        if code in _CONFIG_ERRORS or isinstance(err, NoCredentialsError):
            return StoreError(ErrorType.STORE_CONFIG, f"content bucket {self.bucket!r} refused: {err}")
        return StoreError(ErrorType.TOOL_TRANSIENT, f"content bucket {self.bucket!r} unavailable: {err}", retryable=True)
