"""Inputs and outputs named on a real S3 server (moto's) as on a disk: a prefix with or
without its trailing ``/``, JSONL lists stored on the server, sizes for batching."""

from __future__ import annotations

import json

import pytest

from launcher.modes import FromJsonl
from tests.conftest import files, report
from tests.test_kept_failures import FAILING, ledger_keys, squares
from tests.test_s3 import bucket, put_texts, upper

pytestmark = pytest.mark.timeout(240)


def test_an_output_prefix_with_a_trailing_slash_is_the_same_outputs(s3, launch, tmp_path):
    fs, b = bucket()
    out, fault, ledger = f"{b}/out", tmp_path / "fault", tmp_path / "ledger"
    fault.touch()
    first = [*squares(out + "/", fault, ledger)]
    assert launch(*first).returncode == 1
    assert report(launch.job_dir)["output_dir"] == out
    fault.unlink()
    ledger.unlink()
    r = launch(*squares(out, fault, ledger), "run.retry_failed=true")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(ledger_keys(ledger)) == FAILING  # the failures kept under the other name


def test_a_jsonl_list_stored_on_s3_lists_its_objects(s3, launch, tmp_path):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 3)
    names = [k.removeprefix(f"{b}/") for k in objects]  # relative to the list's prefix
    fs.pipe(f"{b}/list.jsonl", "".join(json.dumps(n) + "\n" for n in names).encode())
    jsonl = ("task.input._target_=launcher.modes.FromJsonl", "~task.input.extensions")
    r = launch(*upper(f"{b}/list.jsonl", str(tmp_path / "out"), *jsonl))
    assert r.returncode == 0, r.stdout + r.stderr
    assert files(tmp_path / "out") == {
        f"{n}.up": v.upper() for n, v in zip(names, objects.values(), strict=True)
    }


def embed_task(**kwargs):
    embed = pytest.importorskip("launcher.examples.embed")
    pytest.importorskip("transformers")
    pytest.importorskip(embed.MODEL_PACKAGE)
    return embed.EmbedTask(**kwargs)


def test_embed_takes_its_documents_jsonl_from_s3(s3, tmp_path):
    fs, b = bucket()
    docs = [{"id": "a", "text": "one"}, {"id": "b", "text": "two words"}]
    fs.pipe(f"{b}/docs.jsonl", "".join(json.dumps(d) + "\n" for d in docs).encode())
    task = embed_task(jsonl=f"{b}/docs.jsonl", output_dir=str(tmp_path))
    task.check_inputs()
    assert [(i["key"], i["text"]) for i in task.generate_tasks()] == [
        ("a", "one"),
        ("b", "two words"),
    ]
    with pytest.raises(Exception, match="task.jsonl='s3://data/none.jsonl' is not an object"):
        embed_task(jsonl=f"{b}/none.jsonl", output_dir=str(tmp_path)).check_inputs()


def test_embed_sizes_objects_on_s3_from_one_listing_per_prefix(s3, tmp_path):
    fs, b = bucket()
    objects = put_texts(fs, f"{b}/in", 40, folders=2)
    task = embed_task(input_dir=f"{b}/in", output_dir=str(tmp_path))
    s3.requests.clear()
    sizes = {url: task.item_size(input=url) for url in objects}
    assert sizes == {url: len(data) for url, data in objects.items()}
    assert not [q for q in s3.requests if q.is_head or q.method == "GET" and not q.is_listing]
    assert len([q for q in s3.requests if q.is_listing]) == 2  # one per prefix


def test_a_list_on_s3_is_checked_and_listed_by_the_mode_itself(s3, tmp_path):
    fs, b = bucket()
    fs.pipe(f"{b}/l.jsonl", b'"x/a.txt"\n{"input": "s3://other/b.txt", "key": "k"}\n')
    mode = FromJsonl()
    mode.check(f"{b}/l.jsonl", "task.input_dir")
    assert list(mode.entries(f"{b}/l.jsonl")) == [
        ("x/a.txt", f"{b}/x/a.txt"),
        ("k", "s3://other/b.txt"),
    ]
