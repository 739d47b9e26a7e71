"""The command line: `python -m lmcore train|runs|eval|sample|ngram`, its JSON output and its error lines."""
from __future__ import annotations

import json
import math
import subprocess

import pytest

from lmcore.cli.main import main
from lmcore.runs.store import RunStore
from tests.conftest import PYTHON, REPO, grammar_lines, subprocess_env

TINY = ["--tokenizer", "word", "--arch", "lstm", "--emb", "16", "--hidden", "16", "--layers", "1",
        "--dropout", "0", "--bptt", "8", "--batch", "4", "--optimizer", "adam", "--threads", "1", "--seed", "5"]


def lmcore(*args, home, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "lmcore", "--home", str(home), *map(str, args)], cwd=REPO,
                          env=subprocess_env(home), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny LSTM trained by the CLI for 30 steps; its JSON lines, parsed."""
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "grammar.txt"
    corpus.write_text("\n".join(grammar_lines(600)) + "\n", encoding="utf-8")
    home = folder / "home"
    proc = lmcore("train", "--corpus", corpus, *TINY, "--max-steps", "30", "--eval-every", "10", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return {"home": home, "corpus": corpus, "rows": lines[:-1], "done": lines[-1]}


def test_train_json_lines(trained):
    rows, done = trained["rows"], trained["done"]
    assert [r["step"] for r in rows] == [10, 20, 30]
    for r in rows:
        assert {"step", "epoch", "train_loss", "valid_ppl", "tokens_per_s", "lr", "run_id"} <= set(r)
        assert r["tokens_per_s"] > 0 and 1 < r["valid_ppl"] < done["vocab"] * 2 and r["run_id"] == done["run_id"]
    assert [r["epoch"] for r in rows] == sorted(r["epoch"] for r in rows) and rows[-1]["epoch"] < 1
    assert rows[-1]["valid_ppl"] < rows[0]["valid_ppl"]  # it learns
    assert done["event"] == "done" and done["status"] == "done"
    assert done["valid_ppl"] == pytest.approx(min(r["valid_ppl"] for r in rows))
    assert done["test_ppl"] > 1 and done["params"] > 0 and done["vocab"] == 21  # 19 words, <unk>, <eos>
    # params of a 1-layer LSTM LM: embedding, 4 gates (V, U, two biases), W and b2
    v, e, h = done["vocab"], 16, 16
    assert done["params"] == v * e + 4 * h * (e + h + 2) + h * v + v


def test_runs_json_lists_the_run(trained, capsys):
    assert main(["--home", str(trained["home"]), "runs", "--json"]) == 0
    [run] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = trained["done"]
    assert run["id"] == done["run_id"] and run["status"] == "done" and run["arch"] == "lstm"
    assert run["step"] == 30 and run["params"] == done["params"] and run["device"] == "cpu"
    assert run["best_valid_ppl"] == pytest.approx(done["valid_ppl"]) and run["test_ppl"] == pytest.approx(done["test_ppl"])
    assert run["corpus_source"] == str(trained["corpus"])


def test_eval_on_the_run_folder(trained, capsys):
    folder = trained["done"]["dir"]
    assert main(["eval", folder, "--json"]) == 0
    test = json.loads(capsys.readouterr().out)
    assert test["split"] == "test" and test["ppl"] == pytest.approx(trained["done"]["test_ppl"], rel=1e-5)
    assert test["ppl"] == pytest.approx(math.exp(test["loss"])) and test["tokens"] > 100
    assert main(["eval", folder, "--split", "valid", "--json"]) == 0
    valid = json.loads(capsys.readouterr().out)
    assert valid["ppl"] == pytest.approx(trained["done"]["valid_ppl"], rel=1e-5) and valid["step"] == 30
    # the same model on other text, with the run's vocabulary: more surprised
    other = trained["corpus"].with_name("other.txt")
    other.write_text("the door sees my friend .\n" * 30 + "a tree likes the vase .\n" * 30, encoding="utf-8")
    assert main(["eval", folder, "--corpus", str(other), "--split", "train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 48 * 7


def test_eval_and_sample_take_a_run_id_as_stop_and_rename_do(trained, capsys):
    home, run_id = str(trained["home"]), str(trained["done"]["run_id"])
    assert main(["--home", home, "eval", run_id, "--split", "valid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ppl"] == pytest.approx(trained["done"]["valid_ppl"], rel=1e-5)
    assert main(["--home", home, "sample", run_id, "--words", "5", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.split()) >= 5
    assert main(["--home", home, "eval", "999"]) == 2
    assert "no run 999" in capsys.readouterr().err


def test_help_lists_no_hidden_command(capsys):
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "worker" not in shown and "SUPPRESS" not in shown and "{train,eval," in shown


def test_sample_from_the_run_folder(trained, capsys):
    folder = trained["done"]["dir"]
    outs = []
    for seed in (1, 1, 2):
        assert main(["sample", folder, "--prompt", "The cat", "--words", "30", "--seed", str(seed)]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[0] != outs[2]
    assert outs[0].startswith("the cat ")  # the prompt, tokenized as the run was (lowercased)
    words = set(outs[0].split())
    vocab = set(" ".join(grammar_lines(600)).split()) | {"<unk>"}
    # 2 prompt words and 30 sampled tokens, each a word or <eos> (a line end); print adds the last "\n"
    assert words <= vocab and len(outs[0].split()) == 2 + 30 - (outs[0].count("\n") - 1)


def test_ngram_json(trained, capsys):
    results = {}
    for order in (1, 2):
        assert main(["ngram", "--corpus", str(trained["corpus"]), "--tokenizer", "word", "--order", str(order),
                     "--json"]) == 0
        results[order] = json.loads(capsys.readouterr().out)
    bigram = results[2]
    assert bigram["order"] == 2 and bigram["vocab"] == trained["done"]["vocab"] and bigram["seconds"] >= 0
    assert bigram["valid_ppl"] > 1 and bigram["valid_ppl"] < results[1]["valid_ppl"] < bigram["vocab"]
    assert bigram["test_ppl"] > 1 and bigram["test_ppl"] < results[1]["test_ppl"]


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_missing_corpus_is_one_error_line(tmp_path):
    missing = tmp_path / "nope.txt"
    proc = lmcore("train", "--corpus", missing, *TINY, "--max-steps", "3", home=tmp_path / "home")
    assert proc.returncode != 0 and proc.stdout == ""
    assert str(missing) in _one_error_line(proc.stderr) and "no such file" in proc.stderr
    assert RunStore(tmp_path / "home").list_runs() == []  # a typo leaves no failed run behind


def test_home_after_the_subcommand(trained, capsys):
    assert main(["runs", "--home", str(trained["home"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["id"] == trained["done"]["run_id"]


def test_diverged_run_prints_strict_json(trained, tmp_path):
    proc = lmcore("train", "--corpus", trained["corpus"], "--tokenizer", "word", "--arch", "elman",
                  "--activation", "relu", "--emb", "16", "--hidden", "16", "--layers", "1", "--dropout", "0",
                  "--optimizer", "sgd", "--lr", "1e6", "--clip", "0", "--bptt", "8", "--batch", "4",
                  "--max-steps", "30", "--eval-every", "1", "--json", home=tmp_path / "home")
    assert proc.returncode == 1
    done = json.loads(proc.stdout.splitlines()[-1], parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert done["status"] == "diverged"


def test_out_of_range_setting_is_one_error_line_from_python_m(tmp_path):
    proc = lmcore("train", "--corpus", "builtin:agreement", "--dropout", "1.5", home=tmp_path / "home")
    assert proc.returncode != 0 and proc.stdout == ""
    assert "dropout" in _one_error_line(proc.stderr)


@pytest.mark.parametrize("flags, word", [
    (["--hidden", "0"], "hidden"),
    (["--emb", "-3"], "emb"),
    (["--layers", "0"], "layers"),
    (["--dropout", "1.5"], "dropout"),
    (["--lr", "-1"], "lr"),
    (["--bptt", "0"], "bptt"),
    (["--clip", "-1"], "clip"),
    (["--max-vocab", "2"], "max-vocab"),
    (["--min-count", "0"], "min-count"),
    (["--tied", "--emb", "8", "--hidden", "16"], "tied"),
    (["--activation", "sigmoid", "--arch", "elman", "--backend", "fused"], "fused"),
])
def test_out_of_range_settings(flags, word, tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["--home", str(home), "train", "--corpus", "builtin:agreement", *flags]) == 2
    err = capsys.readouterr()
    assert err.out == "" and word in _one_error_line(err.err)
    assert not home.exists() or RunStore(home).list_runs() == []  # refused before anything was recorded


def test_eval_of_a_folder_without_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "no best.pt or last.pt" in _one_error_line(capsys.readouterr().err)
