"""The one output-safety rule (medfusion.outputs, medfusion.core.runner): every output checked before any work, all
written or none, nothing deleted that the run did not create, folder runs that check every case first."""

from __future__ import annotations

import json
import os
import signal

import nibabel as nib
import numpy as np
import pytest

from medfusion.core.runner import run_cases
from medfusion.errors import BadCasesError, InputError, OutputExistsError, Terminated, signals_as_exceptions
from medfusion.io import save_like, volume_from_array, write_atomic
from medfusion.outputs import MARKER, OutputPlan, check_outputs, writing


def tree(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) → its bytes."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


def test_files_appear_together_when_the_run_ends(tmp_path):
    a, b = tmp_path / "x" / "a.nii.gz", tmp_path / "y" / "b.json"
    with writing([a], extensions=()).add(b, (".json",)):
        save_like(np.ones((2, 2, 2)), volume_from_array(np.zeros((2, 2, 2)), np.eye(4)), a)
        write_atomic(b, "{}")
        assert not a.exists() and not b.exists()  # staged: hidden files beside the targets
        assert [n.startswith(".") for n in os.listdir(tmp_path / "x")] == [True]
    assert sorted(tree(tmp_path)) == ["x/a.nii.gz", "y/b.json"]


def test_a_failed_run_leaves_nothing_and_keeps_what_was_there(tmp_path):
    keep = tmp_path / "keep.json"
    keep.write_text("old")
    new = tmp_path / "deep" / "er" / "new.json"
    with pytest.raises(RuntimeError, match="boom"):
        with writing([keep, new], overwrite=True, extensions=(".json",)):
            write_atomic(keep, "new")
            write_atomic(new, "new")
            raise RuntimeError("boom")
    assert tree(tmp_path) == {"keep.json": b"old"}  # the folders the run made are gone too


@pytest.mark.parametrize("signum, error", [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_mid_run_leaves_nothing(tmp_path, signum, error):
    out = tmp_path / "o" / "out.json"
    sigterm = signal.getsignal(signal.SIGTERM)
    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even in a background job
    try:
        with pytest.raises(error):
            with signals_as_exceptions(), writing([out], extensions=()):
                write_atomic(out, "half")
                os.kill(os.getpid(), signum)
        assert signal.getsignal(signal.SIGTERM) == sigterm  # the handler is put back
    finally:
        signal.signal(signal.SIGINT, sigint)
    assert os.listdir(tmp_path) == []


def test_a_staging_name_that_is_taken_is_never_used_nor_removed(tmp_path, monkeypatch):
    """Staged files and folders are created exclusively: where a file of someone else's already has the hidden name
    drawn, another name is drawn, and a failed run removes only what it created (the stain writer's temporary file
    too)."""
    import secrets

    from medfusion.apps.stain.slides import TiffRowWriter

    draws = iter(["aaaaaaaa", "aaaaaaaa", "bbbbbbbb", "dddddddd", "aaaaaaaa", "eeeeeeee"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(draws))
    theirs = {tmp_path / ".a.json.aaaaaaaa.partial": b"theirs", tmp_path / ".t.tif.aaaaaaaa.tmp": b"theirs too"}
    for path, data in theirs.items():
        path.write_bytes(data)
    with pytest.raises(RuntimeError):
        with writing([tmp_path / "a.json"], extensions=()):
            write_atomic(tmp_path / "a.json", "{}")  # staged under the second name drawn
            assert (tmp_path / ".a.json.bbbbbbbb.partial").read_bytes() == b"{}"
            raise RuntimeError("fails")
    with pytest.raises(RuntimeError):
        with TiffRowWriter(tmp_path / "t.tif", (4, 4), np.uint8):
            raise RuntimeError("fails")
    assert tree(tmp_path) == {p.name: d for p, d in theirs.items()}
    assert next(draws, None) is None  # every name was drawn: both taken names were met and passed by


def test_checks_come_first(tmp_path):
    inp = tmp_path / "in.nii.gz"
    inp.write_text("x")
    with pytest.raises(InputError, match="two outputs go to the same file"):
        OutputPlan().add([tmp_path / "a.png", tmp_path / "." / "a.png"], ())
    with pytest.raises(InputError, match="one of the inputs"):
        check_outputs([inp], inputs=[inp], overwrite=True)
    with pytest.raises(InputError, match="must end in .png"):
        check_outputs([tmp_path / "a.nii.gz"], extensions=(".png",))
    with pytest.raises(InputError, match="is not a folder"):
        check_outputs([inp / "a.nii.gz"])  # under a file
    with pytest.raises(OutputExistsError) as exc:
        check_outputs([inp, tmp_path / "free.nii.gz"])
    assert exc.value.paths == [str(inp)] and "use overwrite" not in str(exc.value)


def test_a_read_only_folder_is_refused_before_any_work(read_only_folder):
    with pytest.raises(InputError, match="not writable"):
        check_outputs([read_only_folder / "sub" / "a.nii.gz"])
    with pytest.raises(InputError, match="not writable"):
        OutputPlan().add_folder(read_only_folder / "demo", owner="t").check()
    assert not any(n.startswith(".medfusion-probe") for n in os.listdir(read_only_folder))


def test_writing_a_path_the_plan_does_not_name_is_a_bug(tmp_path):
    with pytest.raises(RuntimeError, match="not in the run's output plan"):
        with writing([tmp_path / "a.json"], extensions=()):
            write_atomic(tmp_path / "b.json", "x")
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError, match="not in the run's output plan"):
        with writing([tmp_path / "a.json"], extensions=()), writing([tmp_path / "c.json"], extensions=()):
            pass


def test_a_plan_inside_a_plan_joins_it(tmp_path):
    a = tmp_path / "a.json"
    with writing([a, tmp_path / "b.json"], extensions=()) as outer:
        with writing([a], extensions=(".json",)):
            write_atomic(a, "x")
        assert not a.exists()  # the outer plan commits
        outer.discard([tmp_path / "b.json"])
    assert tree(tmp_path) == {"a.json": b"x"}


def test_a_folder_is_replaced_only_when_this_owner_wrote_all_of_it(tmp_path):
    out = tmp_path / "demo"

    def run(owner="medfusion demo", name="r.txt", inputs=()):
        with OutputPlan(inputs=inputs).add_folder(out, owner=owner):
            write_atomic(out / name, name)

    run(name="first.txt")
    assert json.loads((out / MARKER).read_text()) == {"owner": "medfusion demo", "files": ["first.txt"]}
    run(name="second.txt")  # the earlier run's folder is replaced
    assert sorted(os.listdir(out)) == [MARKER, "second.txt"]
    with pytest.raises(InputError, match="did not write"):
        run(owner="another command")
    (out / "notes.txt").write_text("mine")  # a file the user put there
    with pytest.raises(InputError, match=r"did not write \(notes.txt\)"):
        run()
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    with pytest.raises(InputError, match="holds the input"):
        run(inputs=[out / "second.txt"])
    assert sorted(os.listdir(out)) == [MARKER, "second.txt"]
    assert sorted(os.listdir(tmp_path)) == ["demo"]  # no staged or old folder is left


def test_a_replaced_folder_takes_the_same_file_names_again(tmp_path):
    """The writers' own existence checks step aside for a folder the plan replaces (the demo, run twice alike)."""
    ref = volume_from_array(np.zeros((2, 2, 2)), np.eye(4))
    for value in (1.0, 2.0):
        with OutputPlan().add_folder(tmp_path / "demo", owner="t"):
            save_like(np.full((2, 2, 2), value), ref, tmp_path / "demo" / "x.nii.gz")
    assert float(np.asarray(nib.load(tmp_path / "demo" / "x.nii.gz").dataobj).max()) == 2.0


def test_an_empty_folder_may_be_filled_and_a_failed_run_leaves_the_old_folder(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    with OutputPlan().add_folder(out, owner="t"):
        write_atomic(out / "a", "1")
    with pytest.raises(ZeroDivisionError):
        with OutputPlan().add_folder(out, owner="t"):
            write_atomic(out / "b", "2")
            1 / 0
    assert tree(tmp_path) == {"d/a": b"1", f"d/{MARKER}": b'{"owner": "t", "files": ["a"]}'}


def test_a_file_put_into_the_folder_during_the_run_keeps_it(tmp_path):
    """The folder is checked again when it is replaced: what someone else wrote there meanwhile is never deleted."""
    out = tmp_path / "d"
    with OutputPlan().add_folder(out, owner="t"):
        write_atomic(out / "a", "1")
    with pytest.raises(InputError, match="did not write"):
        with OutputPlan().add_folder(out, owner="t"):
            write_atomic(out / "a", "2")
            (out / "mine.txt").write_text("keep")
    assert tree(tmp_path) == {"d/a": b"1", "d/mine.txt": b"keep", f"d/{MARKER}": b'{"owner": "t", "files": ["a"]}'}


# ---- folder runs ------------------------------------------------------------------------------------------------
def _cohort(tmp_path, n=4):
    items = list(range(n))
    outs = [[str(tmp_path / "out" / f"{i}.json")] for i in items]
    return items, outs


def _write(i, outs):
    if i == 3:
        raise InputError("case 3 turned out bad while running")
    write_atomic(outs[0], str(i))


def test_every_case_is_checked_before_any_is_run(tmp_path):
    items, outs = _cohort(tmp_path)
    ran = []

    def validate(i):
        if i in (1, 2):
            raise InputError(f"case {i} is bad")

    with pytest.raises(BadCasesError) as exc:
        run_cases(items, outs, lambda i, o: ran.append(i), extensions=(), validate=validate, names=list("abcd"))
    assert ran == [] and not (tmp_path / "out").exists()
    assert exc.value.bad == {"b": "case 1 is bad", "c": "case 2 is bad"} and not exc.value.skipped
    assert str(exc.value).startswith("2 of 4 cases are bad (nothing was written): b: case 1 is bad; c:")

    # a case found bad while running stops the run, and the cases done before it are not written either
    with pytest.raises(InputError, match="turned out bad"):
        run_cases(items, outs, _write, extensions=())
    assert not (tmp_path / "out").exists()


def test_skip_bad_writes_the_good_cases_and_lists_the_bad_ones(tmp_path):
    items, outs = _cohort(tmp_path)

    def validate(i):
        if i == 1:
            raise InputError("unreadable")

    with pytest.raises(BadCasesError) as exc:
        run_cases(items, outs, _write, extensions=(), validate=validate, skip_bad=True)
    assert exc.value.skipped and exc.value.bad == {"1": "unreadable", "3": "case 3 turned out bad while running"}
    assert exc.value.written == [outs[0][0], outs[2][0]]
    assert sorted(os.listdir(tmp_path / "out")) == ["0.json", "2.json"]
    assert "skipped them and wrote the other 2" in str(exc.value)
