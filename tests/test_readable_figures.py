"""Curves people can read (issue 13, items 3 and 8): smoothing, an outlier-proof y range that says what it
leaves out, one colour per run on every figure, hover with the config, and pages free of None / inf / &quot;."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lmcore.runs.store import RunStore
from lmcore.viz.memory import agreement_figure, context_figure
from lmcore.viz.next_word import topk_figure
from lmcore.inspect.gradients import DecayCurve
from lmcore.viz.gradients import decay_figure
from lmcore.viz.style import outlier_ceiling, run_colour
from lmcore.viz.training import curves_figure, smooth

from .conftest import REPO, tiny_config
from .test_pages import open_page


def metrics_rows(values: dict[int, list[float]]) -> pd.DataFrame:
    """Evaluation rows of the metrics table, one per value, 10 steps apart."""
    return pd.DataFrame([{"run_id": run, "step": 10 * (i + 1), "epoch": (i + 1) / 4, "valid_ppl": v, "lr": 1.0,
                          "wall_time": float(i)} for run, vs in values.items() for i, v in enumerate(vs)])


def y_top(fig) -> float:
    top = fig.layout.yaxis.range[1]
    return 10 ** top if fig.layout.yaxis.type == "log" else top


def notes(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations)


# --- smoothing -------------------------------------------------------------------------------------
def test_smoothing_a_step_starts_on_the_raw_value_and_approaches_the_new_level():
    raw = [1.0] * 5 + [5.0] * 20
    s = smooth(raw, 0.6)
    assert s[0] == raw[0]  # debiased: no pull towards 0 at the start
    assert np.allclose(s[:5], 1.0)  # a constant stays constant
    after = s[5:]
    assert np.all(np.diff(after) > 0) and after[0] < 3 and 4.99 < after[-1] < 5  # lags, then reaches the step
    assert np.array_equal(smooth(raw, 0.0), raw)
    stronger = smooth(raw, 0.9)
    assert stronger[6] < s[6]  # a heavier weight follows the step more slowly


def test_smoothing_skips_values_that_are_not_finite():
    s = smooth([2.0, math.inf, 2.0, math.nan, 2.0], 0.5)
    assert s[0] == s[2] == s[4] == 2.0 and math.isinf(s[1]) and math.isnan(s[3])
    with pytest.raises(ValueError):
        smooth([1.0], 1.0)


def test_smoothed_curve_is_drawn_over_the_faint_raw_one_in_the_same_colour():
    fig = curves_figure(metrics_rows({4: [300, 200, 150, 120, 110]}), {4: "#4 lstm"}, smoothing=0.6)
    raw, smoothed = fig.data[0], fig.data[1]
    assert list(raw.y) == [300, 200, 150, 120, 110] and raw.showlegend is False
    assert smoothed.y[0] == 300 and smoothed.y[-1] > 110  # smoothed lags behind the raw curve
    assert raw.line.color.startswith("rgba(") and smoothed.line.color == run_colour(4)
    r, g, b = (int(run_colour(4)[i:i + 2], 16) for i in (1, 3, 5))
    assert raw.line.color.startswith(f"rgba({r},{g},{b},")


# --- an axis outliers cannot take over -------------------------------------------------------------
def bulk_with_spike(seed: int = 0) -> dict[int, list[float]]:
    """Three runs of 20 evaluations between 100 and 300; run 2 spikes once to 836k (the issue's GRU)."""
    rng = np.random.default_rng(seed)
    runs = {run: list(100 + 200 * rng.random(20)) for run in (1, 2, 3)}
    runs[2][7] = 836_000.0
    return runs


@pytest.mark.parametrize("log_y", [True, False])
def test_one_spike_is_left_out_of_the_range_and_counted(log_y):
    runs = bulk_with_spike()
    fig = curves_figure(metrics_rows(runs), {1: "a", 2: "b", 3: "c"}, log_y=log_y)
    bulk = max(v for vs in runs.values() for v in vs if v < 1000)
    assert bulk <= y_top(fig) < 1.2 * bulk  # every ordinary point in view, the spike not stretching the axis
    assert re.fullmatch(r"1 point above [\d,]+ not shown", notes(fig)), notes(fig)
    assert fig.data[1].y[7] == 836_000.0  # still in the data: hover and zoom find it


def test_without_outliers_the_axis_is_left_alone_and_nothing_is_said():
    runs = bulk_with_spike()
    runs[2][7] = 250.0
    fig = curves_figure(metrics_rows(runs), {1: "a", 2: "b", 3: "c"})
    assert fig.layout.yaxis.range is None and not fig.layout.annotations


def test_a_run_that_blew_up_is_cut_even_when_it_is_a_quarter_of_the_points():
    runs = bulk_with_spike()
    runs[4] = [1e30] * 15 + [math.inf]
    fig = curves_figure(metrics_rows(runs), {i: str(i) for i in runs}, log_y=True)
    assert y_top(fig) < 2000
    assert notes(fig).startswith("16 points above") and "1 infinite" in notes(fig)
    assert "Infinity" not in fig.to_json() and "NaN" not in fig.to_json()


def test_baselines_stay_in_view_when_outliers_are_cut():
    runs = bulk_with_spike()
    fig = curves_figure(metrics_rows(runs), {1: "a", 2: "b", 3: "c"}, baselines={"KN 3-gram": 900.0}, log_y=False)
    assert 900 <= y_top(fig) < 1000 and "1 point above" in notes(fig)


@pytest.mark.parametrize("log_y", [True, False])
def test_curves_that_flatten_out_keep_their_first_points(log_y):
    """Plateaus make many equal values (a tiny quartile spread): the high start of a curve is no outlier."""
    runs = {3: [47.9, 30.7, 27.2] + [27.0] * 6, 2: [24.2, 25.6, 15.9, 14.7] + [14.1] * 5,
            1: [34.9, 25.0, 18.4] + [17.4] * 6}
    fig = curves_figure(metrics_rows(runs), {1: "a", 2: "b", 3: "c"}, log_y=log_y)
    assert fig.layout.yaxis.range is None and not fig.layout.annotations


def test_a_healthy_run_that_trains_long_on_its_plateau_keeps_its_start():
    """40 epochs of a small text: perplexity from 40 down to 2.8, most points on the plateau; the loss from 3.7 to 1.
    A 0.05-decade floor on the spread had cut 42 of the perplexity's points ("above 6.2 not shown")."""
    ppl = [40, 21, 12, 8, 6, 5, 4.2, 3.6, 3.2, 3.0] + [2.8 + 0.01 * (i % 3) for i in range(30)]
    fig = curves_figure(metrics_rows({1: ppl, 2: [p * 1.05 for p in ppl]}), {1: "a", 2: "b"}, log_y=True)
    assert not fig.layout.annotations and fig.layout.yaxis.range is None
    loss = [math.log(p) for p in ppl]  # the Train page's loss, on a linear axis
    fig = curves_figure(metrics_rows({1: loss}), {1: "a"}, y="valid_ppl", log_y=False)
    assert not fig.layout.annotations and fig.layout.yaxis.range is None
    # on a linear axis a point over 10× the median (40, the first) would squash the rest to the axis: cut
    fig = curves_figure(metrics_rows({1: ppl}), {1: "a"}, log_y=False)
    assert notes(fig).startswith("1 point above") and y_top(fig) < 25  # 40: 14× the plateau


def test_an_lr_schedule_is_drawn_whole():
    """lr 20 divided by 4 five times over 40 epochs: a schedule has no outliers, whatever its spread."""
    lr = [20.0] * 4 + [5.0] * 4 + [1.25] * 4 + [0.3125] * 8 + [0.078125] * 10 + [0.01953125] * 10
    fig = curves_figure(metrics_rows({1: lr}), {1: "a"}, y="valid_ppl", log_y=True, cut_outliers=False, legend=False)
    assert not fig.layout.annotations and fig.layout.yaxis.range is None
    assert fig.layout.showlegend is False  # the Train page's narrow third chart: the two beside it name the runs


def test_too_few_points_are_never_called_outliers():
    assert outlier_ceiling([100, 836_000], log=True) is None


def test_context_figure_keeps_the_rest_and_the_ngram_line_in_view():
    ks = [1, 2, 5, 10, 20, 50, 100, 200]
    def curve(ppl, full):
        return pd.DataFrame({"context": [str(k) for k in ks] + ["all"], "tokens": ks + [200], "ppl": ppl + [full]})
    curves = {"elman": curve([95_651, 3000, 800, 400, 300, 280, 270, 268], 265),
              "lstm": curve([900, 500, 300, 200, 160, 150, 148, 147], 146),
              "gru": curve([1000, 520, 310, 210, 170, 155, 150, 149], 148)}
    for log_y in (False, True):
        fig = context_figure(curves, baseline=400.0, baseline_name="KN 3-gram", log_y=log_y)
        assert 1000 <= y_top(fig) < 10_000 and notes(fig).startswith("1 point above" if log_y else "2 points above")
        assert (y_top(fig) >= 3000) == log_y  # log: 3,000 is within 10× of the rest and stays
        assert fig.layout.yaxis.type == ("log" if log_y else "linear")


# --- one colour per run ----------------------------------------------------------------------------
def test_a_run_has_the_same_colour_in_every_figure():
    curves = curves_figure(metrics_rows({7: [200, 150, 120], 3: [210, 160, 130]}), {7: "#7", 3: "#3"})
    reordered = curves_figure(metrics_rows({3: [210, 160, 130], 7: [200, 150, 120]}), {3: "#3", 7: "#7"})
    ctx = pd.DataFrame({"context": ["1", "2", "all"], "tokens": [1, 2, 2], "ppl": [300.0, 250.0, 240.0]})
    context = context_figure({"#3": ctx, "#7": ctx}, run_keys={"#7": "run:7", "#3": "run:3"})
    table = pd.DataFrame({"model": ["#7", "#7"], "distance": [1, 2], "accuracy": [0.9, 0.8], "items": [5, 5]})
    agreement = agreement_figure(table, run_keys={"#7": "run:7"})

    k = np.arange(4)
    decay = DecayCurve(k, 0.5 ** k, 0 * k, 0.4 ** k, 0.6 ** k, np.ones((2, 4)), np.arange(2))
    gradients = decay_figure({"#3": decay, "#7": decay}, "decay", "norm", run_keys={"#7": "run:7", "#3": "run:3"})

    def colour(fig, name):
        return next(t.line.color for t in fig.data if t.name == name)
    assert colour(curves, "#7") == colour(reordered, "#7") == colour(context, "#7") == colour(agreement, "#7") \
        == colour(gradients, "#7")
    assert colour(curves, "#7") != colour(curves, "#3")
    assert run_colour(7) == run_colour("run:7")
    assert run_colour("demo:agreement-lstm") == run_colour("demo:agreement-lstm")


def test_the_demos_of_one_corpus_never_share_a_colour():
    """The Memory page draws the agreement demos together: the σ-RNN's and the FFNN's keys hashed to one red."""
    from lmcore.training.demos import DEMO_DIR
    by_corpus: dict[str, list[str]] = {}
    for path in DEMO_DIR.glob("*.pt"):
        by_corpus.setdefault(path.stem.rsplit("-", 1)[0], []).append(run_colour(f"demo:{path.stem}"))
    assert len(by_corpus) >= 2 and sum(len(c) for c in by_corpus.values()) >= 7
    assert all(len(set(colours)) == len(colours) for colours in by_corpus.values()), by_corpus


def test_hover_shows_the_config_and_reads_no_template_field_from_a_run_name():
    fig = curves_figure(metrics_rows({1: [200, 150]}), {1: "#1 my %{y} <b>run</b>"},
                        configs={1: "model: LSTM · 1 layer × 32 units\ntraining: sgd lr 20"})
    trace = fig.data[0]
    assert "%{y}" not in trace.meta[0] or "%{meta[0]}" in trace.hovertemplate
    assert "<b>run</b>" not in trace.meta[0] and "&lt;b&gt;run" in trace.meta[0]
    assert "sgd lr 20" in trace.meta[1] and "my %{y}" not in trace.hovertemplate


# --- clean output ----------------------------------------------------------------------------------
def test_bar_labels_and_title_carry_no_html_entities():
    tokens = ['"', "it's", "a&b", "<unk>"]
    fig = topk_figure(tokens, [0.4, 0.3, 0.2, 0.1], actual='"', title='after “he said "”\nactual next: “"”')
    spec = fig.to_json()
    assert "&quot;" not in spec and "&#x27;" not in spec and "&#34;" not in spec
    assert list(fig.data[0].y) == ['"', "it's", "a&amp;b", "&lt;unk&gt;"]  # Plotly shows &amp; &lt; as & <
    assert '"' in fig.layout.title.text


UNREADABLE = re.compile(r"\b(None|nan|NaN|inf|Infinity)\b|&quot;")


def add_run(store: RunStore, cfg, status: str, ppl: list[float], best: float | None, test: float | None,
            message: str = "") -> int:
    run = store.create_run(cfg.to_dict(), status=status)
    store.update_run(run, best_valid_ppl=best, test_ppl=test, params=1234, vocab=40, tokens_per_s=5000.0,
                     device="cpu", started_at=1.0, finished_at=3.5, message=message)
    for i, value in enumerate(ppl):
        store.add_metrics(run, {"step": 10 * (i + 1), "epoch": (i + 1) / len(ppl), "lr": 1.0, "train_loss": 3.0,
                                "valid_loss": math.log(value), "valid_ppl": value, "tokens_per_s": 5000.0,
                                "wall_time": float(i)})
    return run


def page_text(at) -> str:
    parts = [e.value for kind in ("title", "subheader", "caption", "markdown", "warning", "info", "error")
             for e in getattr(at, kind)]
    for frame in at.dataframe:
        values = frame.value
        parts += [str(v) for v in values.select_dtypes(exclude="number").stack().dropna()]
        parts += ["inf"] * int(np.isinf(values.select_dtypes(include="number").to_numpy(dtype=float)).sum())
        if values.isna().any().any():  # a missing cell shows the placeholder, never "None" or "nan"
            assert frame.proto.placeholder.strip(), "a table with missing cells has no placeholder"
            parts.append(frame.proto.placeholder)
    return "\n".join(parts)


def test_compare_shows_a_diverged_run_without_none_nan_or_infinity(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    good = add_run(store, tiny_config(grammar_file, "lstm"), "done", [40.0, 25.0, 20.0], 20.0, 21.0)
    add_run(store, tiny_config(grammar_file, "gru", lr=1000.0), "diverged", [35.0, math.inf], math.inf, None,
            "blew up at step 20: its perplexity overflowed (validation perplexity inf); loss became nan")
    add_run(store, tiny_config(grammar_file, "elman"), "done", [60.0, 45.0, 1e30], 45.0, 47.0)
    at = open_page("views/compare.py")
    table = at.dataframe[0].value
    assert "diverged" in set(table["status"]) and "baseline" in set(table["status"])
    assert not UNREADABLE.search(page_text(at)), UNREADABLE.findall(page_text(at))
    assert "∞" in " ".join(w.value for w in at.warning)
    spec = at.get("plotly_chart")[0].proto.spec
    assert "Infinity" not in spec and "NaN" not in spec
    assert "not shown" in json.dumps(json.loads(spec)["layout"].get("annotations", []))
    links = {link.proto.label.split(":")[0]: link.proto.query_string for link in at.get("page_link")}
    assert f"run=run%3A{good}" in links["Hidden states"] or f"run=run:{good}" in links["Hidden states"]


def open_link(page: str, **params) -> AppTest:
    """A page opened from a shared link: its query parameters are there before the first run."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_compare_link_reopens_the_same_view(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    ids = [add_run(store, tiny_config(grammar_file, arch), "done", [40.0, 25.0, 20.0, 18.0, 17.0], 17.0, 18.0)
           for arch in ("lstm", "gru", "elman")]
    at = open_link("views/compare.py", cmp_scale="linear", cmp_smooth="0.5", cmp_x="step", cmp_y="learning rate",
                   cmp_order="2", compare=f"{ids[0]},{ids[2]}")
    assert (at.radio(key="cmp_scale").value, at.slider(key="cmp_smooth").value) == ("linear", 0.5)
    assert (at.radio(key="cmp_x").value, at.radio(key="cmp_y").value) == ("step", "lr")
    assert at.select_slider(key="cmp_order").value == 2
    assert at.multiselect[1].value == [ids[0], ids[2]]  # the first is the Tags filter
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["yaxis"]["type"] == "linear" and fig["layout"]["xaxis"]["title"]["text"] == "training step"
    assert fig["layout"]["yaxis"]["title"]["text"] == "learning rate"
    assert len(fig["data"]) == 2 * 2  # per run the faint raw and the smoothed curve (no KN line for the lr)
    assert "Kneser–Ney 2-gram" in set(at.dataframe[0].value["name"])


def test_next_word_page_shows_a_typed_quote_as_a_quote(lmcore_home):
    at = open_page("views/next_word.py")
    at.radio[0].set_value("type my own").run()
    at.text_area[0].set_value('the " roses " are red .').run()
    assert not at.exception, [e.value for e in at.exception]
    at.slider[0].set_value(2).run()
    spec = at.get("plotly_chart")[0].proto.spec
    assert "&quot;" not in spec and '\\"' in spec


def test_a_next_word_link_reopens_the_position_and_the_sample(lmcore_home):
    params = dict(run="demo:agreement-lstm", nw_t="5", nw_prompt="the roses", nw_seed="7", nw_sampled="1")
    first, again = open_link("views/next_word.py", **params), open_link("views/next_word.py", **params)
    assert first.slider(key="nw_t").value == 5 and first.text_input(key="nw_prompt").value == "the roses"
    sample = first.get("html")[-1].proto.body
    assert "the roses" in sample and sample == again.get("html")[-1].proto.body  # the same seed, the same text


def test_next_word_position_follows_a_shorter_text(lmcore_home):
    at = open_link("views/next_word.py", run="demo:agreement-lstm", nw_t="9")
    at.radio[0].set_value("type my own").run()
    at.text_area[0].set_value("the roses are red .").run()
    assert not at.exception, [e.value for e in at.exception]
    slider = at.slider(key="nw_t")
    assert slider.value == slider.max < 9  # the last token of the new text


def test_smoothing_skips_the_points_the_axis_leaves_out():
    runs = bulk_with_spike()
    fig = curves_figure(metrics_rows(runs), {1: "a", 2: "b", 3: "c"}, smoothing=0.6)
    smoothed = np.array(fig.data[3].y, dtype=float)  # run 2: raw, smoothed
    assert np.isnan(smoothed[7]) and np.nanmax(smoothed) < y_top(fig)  # the spike does not carry it off the chart
    assert fig.data[3].customdata[7] == 836_000.0  # hover still reads the raw value around it


def test_a_markov_vs_memory_link_draws_the_context_use_again_cleanly(lmcore_home):
    at = open_link("views/memory.py", runs_view="demo:agreement-lstm,demo:agreement-elman", mem_context="1",
                   mem_targets="2000", mem_scale="linear", mem_order="2")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2  # agreement, and context use without a click
    context = charts[1]
    assert context["layout"]["yaxis"]["type"] == "linear"
    assert any(t["name"] == "Kneser–Ney 2-gram" for t in context["data"])
    colours = {t["name"]: t["line"]["color"] for t in context["data"]}
    lstm = next(name for name in colours if "LSTM" in name and "all context" not in name)
    assert colours[lstm] == run_colour("demo:agreement-lstm")
    assert not UNREADABLE.search(page_text(at)), UNREADABLE.findall(page_text(at))


TEXT_FIELDS = ("{}_source", "{}_typed", "{}_len", "{}_start")
SHARED_FIELDS = {"pick_text": TEXT_FIELDS, "open_run": TEXT_FIELDS,  # appstate's bound widgets, by the key given
                 "curve_controls": ("{}scale", "{}smooth")}
SHARED_KEY_ARG = {"open_run": "text_key"}  # where a shared widget's key is not called key=


def _key_name(node) -> str | None:
    """A key as written: a literal, or an f-string with '#' for its values (f"hid{i}" -> "hid#")."""
    import ast
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "#" for v in node.values)
    return None


def bound_keys(path) -> set[str]:
    """The keys of a page's widgets bound to the URL: bind=..., Train's field(widget, label, key, ...), and the
    fields appstate's shared widgets make from the key a page gives them."""
    import ast
    keys = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        if "bind" in kw:
            keys.add(_key_name(kw.get("key")))
        elif name == "field" and len(node.args) >= 3:
            keys.add(_key_name(node.args[2]))
        elif name in SHARED_FIELDS:
            key = _key_name(kw.get(SHARED_KEY_ARG.get(name, "key"))
                            or (node.args[0] if name == "curve_controls" and node.args else None))
            keys.update(f.format(key) for f in SHARED_FIELDS[name] if key is not None)
    return keys - {None}


PAGES = sorted(p.name for p in (REPO / "views").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("page", PAGES)
def test_bound_keys_are_this_pages_own(page):
    """A bound key names one value in the session on every page: Compare's log/linear "scale" once crashed the
    BPTT page's float slider of that name, and the Sweeps form's "epochs" filled Train's."""
    mine = bound_keys(REPO / "views" / page)
    others = set().union(*(bound_keys(p) for p in (REPO / "views").glob("*.py") if p.name != page))
    assert not mine & others, mine & others
    # the corpus page keeps its choice in the URL through appstate.corpus_spec; the lecture has no settings (its
    # runs follow the data folder), its try-it links carry the state to the other pages
    if page not in ("corpus.py", "lecture.py"):
        assert mine, page


def test_compare_settings_do_not_leak_into_other_pages(lmcore_home, grammar_file):
    add_run(RunStore(lmcore_home), tiny_config(grammar_file, "lstm"), "done", [40.0, 25.0, 20.0], 20.0, 21.0)
    at = open_page("views/compare.py")
    at.radio(key="cmp_scale").set_value("linear").run()
    at.select_slider(key="cmp_order").set_value(1).run()
    for page in ("views/bptt.py", "views/memory.py"):
        open_page(page, at)  # asserts no exception
    assert at.select_slider(key="mem_order").value == 3


def test_a_constant_lr_is_drawn_around_its_value():
    """Plotly draws a flat line on value ± 1: an lr of 0.003 read as 0 on an axis from −1 to 1."""
    rows = pd.DataFrame({"run_id": [1] * 4, "step": range(4), "epoch": 0.0, "lr": 0.003, "valid_ppl": 50.0,
                         "train_loss": 4.0, "wall_time": 0.0})
    low, high = curves_figure(rows, {1: "#1"}, "step", "lr", log_y=False).layout.yaxis.range
    assert 0 < low < 0.003 < high < 0.01


def test_log_axis_labels_name_every_tick_in_full():
    """Between decades Plotly labels ticks with bare digits (20 reads "2" just above 10)."""
    rows = pd.DataFrame({"run_id": [1] * 5, "step": range(5), "epoch": 0.0, "lr": 0.003,
                         "valid_ppl": [24.0, 16.0, 12.0, 9.0, 7.0], "train_loss": 4.0, "wall_time": 0.0})
    axis = curves_figure(rows, {1: "#1"}, "step", "valid_ppl").layout.yaxis
    assert axis.type == "log" and list(axis.ticktext) == ["7", "8", "9", "10", "15", "20"]
    assert list(axis.tickvals) == sorted(axis.tickvals) and all(7 <= v <= 24 for v in axis.tickvals)


def test_a_vanished_gradient_is_a_gap_not_a_flat_line():
    """An Elman gradient underflows to exactly 0: drawn at a floor it read as a flat line, i.e. as memory."""
    k = np.arange(6)
    mean = np.array([1.0, 0.1, 0.01, 0.001, 0.0, 0.0])
    curve = DecayCurve(k, mean, 0 * k, mean, mean, np.ones((2, 6)), np.arange(2))
    [band, line] = decay_figure({"elman": curve}, "decay", "norm").data
    assert np.isnan(line.y[4:]).all() and line.y[3] == 0.001 and "vanished from k = 4" in line.name
    assert min(band.y) > 1e-5  # the band's foot just below the lowest value, not at 1e-30


def test_zipf_plot_is_light_and_log_log():
    """The first page's chart: Vega-Lite (no 4.7 MB Plotly script before the first paint), log-log, with
    ranks thinned evenly on the log axis so a large vocabulary stays a small payload."""
    from lmcore.viz.training import ZIPF_POINTS, zipf_spec
    counts = np.sort(np.random.default_rng(0).zipf(1.5, 50_000))[::-1].astype(float)
    spec = zipf_spec(counts)
    rows = spec["data"]["values"]
    corpus = [r for r in rows if r["series"] == "corpus"]
    assert len(corpus) <= ZIPF_POINTS and corpus[0] == {"rank": 1, "count": counts[0], "series": "corpus"}
    assert corpus[-1]["rank"] == counts.size  # the rarest word is still drawn
    assert all(layer["encoding"][axis]["scale"]["type"] == "log" for layer in spec["layer"] for axis in "xy")
