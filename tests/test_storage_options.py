"""``task.storage_options``: how a job reaches its store (here moto's S3 server, named only
there), with every secret taken from the environment and written down nowhere."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import report
from tests.test_s3 import bucket, outputs, put_texts, upper

pytestmark = pytest.mark.timeout(240)


def written(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def holding(directory: Path, secret: str) -> list[Path]:
    return [p for p in written(directory) if secret in p.read_text("latin-1")]


def test_the_endpoint_and_credentials_come_from_storage_options_and_stay_unwritten(
    s3, launch, monkeypatch
):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 8)
    secret = f"secret-{uuid.uuid4().hex}"
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)  # the job knows the server only from its storage_options
    monkeypatch.setenv("LAB_S3_KEY", "testing")
    monkeypatch.setenv("LAB_S3_SECRET", secret)
    options = (
        f"+task.storage_options.endpoint_url={s3.endpoint}",
        "+task.storage_options.key=${oc.env:LAB_S3_KEY}",
        "+task.storage_options.secret=${oc.env:LAB_S3_SECRET}",
    )
    r = launch(*upper(f"{b}/in", f"{b}/out", "backbone.num_workers=2"), *options)
    assert r.returncode == 0, r.stdout + r.stderr
    assert report(launch.job_dir)["processed"] == 8  # written by the workers, through them
    expected = {k[len(b) + 4 :] + ".up": v.upper() for k, v in objects.items()}
    assert outputs(fs, f"{b}/out") == expected
    assert (launch.job_dir / ".hydra" / "config.yaml").exists()
    assert secret not in r.stdout + r.stderr and not holding(launch.job_dir, secret)

    r = launch(*upper(f"{b}/in", f"{b}/out", "shard.num=2"), *options, multirun=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (launch.job_dir / "multirun.yaml").exists()
    assert secret not in r.stdout + r.stderr and not holding(launch.job_dir, secret)


def test_a_secret_typed_as_a_value_is_refused_and_taken_back_out_of_hydras_files(s3, launch):
    fs, b = bucket()
    put_texts(fs, f"{b}/in", 3)
    secret = f"secret-{uuid.uuid4().hex}"
    typed = f"+task.storage_options.client_kwargs.aws_secret_access_key={secret}"
    for multirun in (False, True):
        extra = ("shard.num=2",) if multirun else ()
        r = launch(*upper(f"{b}/in", f"{b}/out", *extra), typed, multirun=multirun)
        said = r.stdout + r.stderr
        assert r.returncode == 2, said
        assert "task.storage_options.client_kwargs.aws_secret_access_key: a secret" in said
        assert "${oc.env:NAME}" in said and "Traceback" not in said
        assert secret not in said
        assert written(launch.job_dir) and not holding(launch.job_dir, secret)
    assert outputs(fs, f"{b}/out") == {}
