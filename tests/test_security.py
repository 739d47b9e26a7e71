"""Security: checkpoints load with weights_only=True only; user strings are escaped wherever HTML or markdown
shows them; names cannot leave the data folder; the app listens on localhost; nothing typed is executed."""
from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from .conftest import REPO, grammar_lines

HOSTILE = ["<script>window.__pwned=1</script>", "<img/src=x/onerror=window.__pwned=2>", "<b>bold</b>",
           "<a href='javascript:alert(1)'>x</a>", "[x](javascript:alert(1))", "**md**", ":red[x]", "$x^2$"]
RAW = re.compile(r"<(script|img|a |b>)", re.I)

SOURCES = sorted(p for p in REPO.rglob("*.py") if not {".venv", ".scratch", "test-artifacts"} & set(p.parts))
APP_SOURCES = [p for p in SOURCES if p.parts[len(REPO.parts)] in ("lmcore", "views", "app.py", "appstate")]


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(func) -> str:
    return ast.unparse(func)


def test_every_torch_load_is_weights_only():
    found = []
    for path in SOURCES:
        for call in _calls(path):
            if _name(call.func) in ("torch.load", "load") and _name(call.func) == "torch.load":
                kw = {k.arg: k.value for k in call.keywords}
                assert "weights_only" in kw and isinstance(kw["weights_only"], ast.Constant) \
                    and kw["weights_only"].value is True, f"{path}:{call.lineno}"
                found.append(path.name)
    assert "checkpoints.py" in found  # the one loader everything goes through


def test_nothing_typed_is_executed():
    """No eval/exec, no shell, no pickle, no os.system in the app or the library."""
    for path in APP_SOURCES:
        text = path.read_text(encoding="utf-8")
        for call in _calls(path):
            name = _name(call.func)
            assert name not in ("eval", "exec", "os.system", "os.popen", "pickle.load", "pickle.loads",
                                "subprocess.getoutput", "subprocess.getstatusoutput"), f"{path}:{call.lineno} {name}"
            for kw in call.keywords:
                assert not (kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value), \
                    f"{path}:{call.lineno} shell=True"
        assert "unsafe_allow_html=True" not in text, path  # st.html escapes are ours; markdown stays plain
        assert "components.v1" not in text and "components.html" not in text, path  # raw HTML iframes: never


def test_user_regex_runs_bounded_in_a_child_process():
    from lmcore.inspect import hidden
    assert hidden.MAX_PATTERN <= 1000 and hidden.MAX_TEXT <= 1_000_000 and hidden.REGEX_TIMEOUT_S <= 5
    with pytest.raises(ValueError, match="took longer than"):
        hidden.regex_spans(r"(a+)+$", "a" * 40 + "b", timeout=0.5)
    with pytest.raises(ValueError, match="characters; at most"):
        hidden.regex_spans("a" * (hidden.MAX_PATTERN + 1), "aaa")
    # the page's pattern field and typed texts are length-bounded too
    for view in ("hidden.py", "bptt.py", "gradients.py", "next_word.py", "memory.py", "embeddings.py", "interventions.py"):
        text = (REPO / "views" / view).read_text(encoding="utf-8")
        for field in re.findall(r"st\.text_(?:input|area)\((?:[^()]|\([^()]*\))*\)", text, re.S):
            assert "max_chars=" in field, (view, field[:60])


def test_app_listens_on_localhost_unless_told_otherwise():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "localhost"
    assert config["server"]["maxUploadSize"] >= 25  # the outer ceiling; lmcore.toml sets the real limit


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "", ".txt", "a/b\\c.txt", "x" * 500 + ".txt",
                                  "<script>alert(1)</script>.txt", "con.txt", "名前.txt", "a\x00b.txt", "~/.bashrc"])
def test_upload_names_cannot_leave_the_uploads_folder(name, lmcore_home):
    from appstate.corpus import allowed_source, save_upload
    path = save_upload(name, ("\n".join(grammar_lines(30)) + "\n").encode())
    assert path.parent == lmcore_home / "uploads" and path.is_file()
    assert re.fullmatch(r"[0-9a-f]{12}-[A-Za-z0-9_-]{1,40}\.txt", path.name), path.name
    assert allowed_source(str(path))


def test_a_url_cannot_point_the_app_at_other_files(lmcore_home, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("\n".join(grammar_lines(30)), encoding="utf-8")
    (lmcore_home / "uploads").mkdir(parents=True)
    for source in (str(secret), str(lmcore_home / "uploads" / ".." / "runs.sqlite"), "/etc/passwd",
                   "builtin:../../etc/passwd"):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        at.query_params["corpus"] = source
        at.run()
        assert not at.exception
        assert "python-docs" in at.subheader[0].value  # the default corpus, not the named file


def test_run_names_never_make_paths(lmcore_home, grammar_file):
    from lmcore.cli.main import main
    from lmcore.runs.store import RunStore
    assert main(["train", "--corpus", str(grammar_file), "--tokenizer", "word", "--name", "../../../escape<b>",
                 "--emb", "8", "--hidden", "8", "--layers", "1", "--max-steps", "2", "--bptt", "4", "--batch", "2"]) == 0
    store = RunStore()
    [run] = store.list_runs()
    assert run["name"] == "../../../escape<b>"
    assert {Path(c["path"]).parent for c in store.checkpoints(run["id"]).values()} == {store.run_dir(run["id"])}
    assert store.run_dir(run["id"]).parent == lmcore_home / "runs"
    assert not (lmcore_home.parent / "escape<b>").exists()


# --- escaping ----------------------------------------------------------------------------------------------

def _figure_text(fig) -> str:
    """Every string in the figure, as Plotly will read it (to_json would hide '<' as \\u003c)."""
    return _strings(fig.to_dict())


def _strings(obj) -> str:
    out = []

    def walk(x):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple, np.ndarray)):
            for v in x:
                walk(v)
    walk(obj)
    return "\n".join(out)


def test_figures_escape_run_names_and_tokens():
    from lmcore.inspect.bptt_check import walkthrough
    from lmcore.inspect.gradients import DecayCurve
    from lmcore.viz.bptt import walk_back_figure
    from lmcore.viz.gradients import decay_figure
    from lmcore.viz.memory import agreement_figure, context_figure
    from lmcore.viz.training import curves_figure
    labels = {i + 1: h for i, h in enumerate(HOSTILE)}
    metrics = pd.DataFrame([{"run_id": i, "step": s, "valid_ppl": 10.0 + s} for i in labels for s in (1, 2)])
    figures = [curves_figure(metrics, labels, baselines={HOSTILE[0]: 5.0})]
    k = np.arange(1, 4, dtype=float)
    figures.append(decay_figure({h: DecayCurve(k=k, mean=1 / k, std=k * 0, low=0.5 / k, high=2 / k,
                                                  per_position=np.ones((1, 3)), positions=np.arange(1)) for h in HOSTILE}, "t", "y"))
    table = pd.DataFrame([{"model": h, "distance": 1, "accuracy": 0.5, "items": 3} for h in HOSTILE])
    figures.append(agreement_figure(table))
    figures.append(context_figure({h: pd.DataFrame({"context": ["1", "all"], "tokens": [1, 2], "ppl": [9.0, 8.0]})
                                   for h in HOSTILE}))
    figures.append(walk_back_figure(walkthrough(["start"] + HOSTILE[:3] + ["end"], hidden=4, tau=4, seed=0)))
    for fig in figures:
        text = _figure_text(fig)
        assert not RAW.search(text), RAW.search(text).group(0)
        assert "&lt;script&gt;" in text or "&lt;img" in text


def test_pages_escape_typed_text(lmcore_home):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/bptt.py").run()
    at.text_input[0].set_value(" ".join(HOSTILE)).run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)  # names the last two tokens: markdown and LaTeX, escaped
    assert "**\\$x^2\\$** after **\\:red\\[x\\]**" in shown
    spec = _strings(json.loads(at.get("plotly_chart")[0].proto.spec))
    assert "&lt;b&gt;bold&lt;/b&gt;" in spec and not RAW.search(spec)  # the window reaches back to <b>
