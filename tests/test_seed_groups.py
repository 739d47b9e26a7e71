"""Issue 18, part 1: runs that differ only by seed form one group, shown as mean ± std with a band."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from lmcore.runs import seeds
from lmcore.runs.reports import compare_table, metrics_frame
from lmcore.runs.store import RunStore
from lmcore.viz.training import group_curves_figure

from .conftest import tiny_config


def add(store: RunStore, cfg, best: float, curve: list[float]) -> int:
    run = store.create_run(cfg.to_dict(), status="done")
    store.update_run(run, best_valid_ppl=best, test_ppl=best + 1, params=1234, vocab=40, tokens_per_s=5000.0,
                     device="cpu", started_at=1.0, finished_at=3.5)
    for i, value in enumerate(curve):
        store.add_metrics(run, {"step": 10 * (i + 1), "epoch": float(i + 1), "lr": 1.0, "train_loss": 3.0,
                                "valid_loss": math.log(value), "valid_ppl": value, "tokens_per_s": 5000.0,
                                "wall_time": float(i)})
    return run


@pytest.fixture
def three_seeds_and_a_gru(tmp_path, grammar_file):
    store = RunStore(tmp_path / "home")
    lstm = tiny_config(grammar_file, "lstm")
    ids = [add(store, replace(lstm, train=replace(lstm.train, seed=s, threads=s % 2)), best, curve)
           for s, best, curve in [(1, 50.0, [80, 60, 50]), (2, 52.0, [84, 62, 52]), (3, 54.0, [88, 64, 54])]]
    gru = tiny_config(grammar_file, "gru")
    ids.append(add(store, gru, 51.0, [70, 55, 51]))
    return store, ids


def test_runs_that_differ_only_by_seed_are_one_group(three_seeds_and_a_gru):
    store, ids = three_seeds_and_a_gru
    runs = [store.get_run(i) for i in ids]
    groups = seeds.seed_groups(runs)
    assert [g.run_ids for g in groups] == [ids[:3], ids[3:]] and groups[0].seeds == [1, 2, 3]
    table = seeds.group_table(compare_table(runs), groups)
    lstm = table.iloc[0]
    assert lstm["runs"] == 3 and lstm["best valid ppl mean"] == pytest.approx(52.0)
    assert lstm["best valid ppl std"] == pytest.approx(2.0) and lstm["best valid ppl n"] == 3
    assert math.isnan(table.iloc[1]["best valid ppl std"]) or table.iloc[1]["best valid ppl std"] is None
    assert seeds.mean_pm(lstm["best valid ppl mean"], lstm["best valid ppl std"], 3) == "52.00 ± 2.00 (3 seeds)"


def test_two_runs_of_one_seed_are_one_seed_not_a_spread_of_zero(tmp_path, grammar_file):
    """A run trained again with its seed (or stopped and started anew) is a repeat: "1111, 1111" had been shown as
    "± 0.00 (2 seeds)", a spread no reseeding measured."""
    store = RunStore(tmp_path / "home")
    lstm = tiny_config(grammar_file, "lstm")
    twice = [add(store, lstm, 50.0, [80, 60, 50]), add(store, lstm, 50.0, [80, 60, 50])]
    other = add(store, replace(lstm, train=replace(lstm.train, seed=lstm.train.seed + 1)), 54.0, [88, 64, 54])
    runs = [store.get_run(i) for i in twice]
    (group,) = seeds.seed_groups(runs)
    row = seeds.summary_table(compare_table(runs), [group]).iloc[0]
    assert row["runs"] == 2 and row["seeds"] == str(lstm.train.seed) and row["valid ppl"] == "50.00"
    runs.append(store.get_run(other))
    (group,) = seeds.seed_groups(runs)
    stats = seeds.group_table(compare_table(runs), [group]).iloc[0]
    assert stats["runs"] == 3 and stats["best valid ppl n"] == 2  # two seeds, the first one's repeat counted once
    assert stats["best valid ppl mean"] == pytest.approx(52.0) and stats["best valid ppl std"] == pytest.approx(2 ** 1.5)
    curves = seeds.group_curves(metrics_frame(store, [r.id for r in runs]), [group], "epoch", "valid_ppl")
    assert list(curves[group.label]["n"]) == [2, 2, 2] and list(curves[group.label]["mean"]) == [84, 62, 52]
    lecture = pd.DataFrame({"model": ["LSTM"] * 3, "run": [r.id for r in runs], "perplexity": [50.0, 50.0, 54.0]})
    folded = seeds.lecture_rows(lecture, [group]).iloc[0]
    assert folded["seeds"] == 2 and folded["perplexity"] == 52.0


def test_groups_of_one_evaluation_draw_their_spread_and_the_baseline(tmp_path, grammar_file):
    """A 1-epoch sweep: one evaluation a run. The band had been two stray dots in Plotly's default colours and the
    n-gram line ran from x = 1 to x = 1 (not drawn)."""
    store = RunStore(tmp_path / "home")
    lstm = tiny_config(grammar_file, "lstm")
    ids = [add(store, replace(lstm, train=replace(lstm.train, seed=s)), v, [v]) for s, v in ((1, 50.0), (2, 54.0))]
    groups = seeds.seed_groups([store.get_run(i) for i in ids])
    curves = seeds.group_curves(metrics_frame(store, ids), groups, "epoch", "valid_ppl")
    fig = group_curves_figure(curves, {g.label: g.run_ids[0] for g in groups}, baselines={"KN 3-gram": 60.0})
    assert not [t for t in fig.data if t.fill == "toself"]  # no band of one x
    (mean,) = [t for t in fig.data if t.name and "seeds" in t.name]
    assert list(mean.error_y.array) == [pytest.approx(2 ** 0.5 * 2)] and mean.error_y.color == mean.line.color
    (baseline,) = [t for t in fig.data if t.name == "KN 3-gram"]
    assert baseline.x[1] > baseline.x[0]


def test_a_sweeps_group_is_named_without_its_first_seed_and_says_whose_spread_is_unknown(tmp_path, grammar_file):
    store = RunStore(tmp_path / "home")
    lstm = tiny_config(grammar_file, "lstm")
    ids = [add(store, replace(lstm, name=f"LSTM 1×16 seed {s}", train=replace(lstm.train, seed=s)), v, [v])
           for s, v in ((1, 50.0), (2, 54.0))]
    ids.append(add(store, replace(tiny_config(grammar_file, "gru"), name="GRU 1×16 seed 1"), 60.0, [60.0]))
    runs = [store.get_run(i) for i in ids]
    groups = seeds.seed_groups(runs)
    assert [g.label for g in groups] == ["LSTM 1×16", "GRU 1×16 seed 1"]  # one seed: its run's own name
    table = seeds.group_table(compare_table(runs), groups)
    assert seeds.noise_marks(table) == ["best", "one seed: spread unknown"]  # the GRU's own spread is unknown


def test_a_difference_inside_the_seeds_spread_is_marked(three_seeds_and_a_gru):
    store, ids = three_seeds_and_a_gru
    runs = [store.get_run(i) for i in ids]
    table = seeds.group_table(compare_table(runs), seeds.seed_groups(runs))
    # the GRU's one seed (51) beats the LSTM's mean (52) by less than the LSTM's std (2): but its spread is unknown
    assert seeds.noise_marks(table) == ["the best has one seed: spread unknown", "best"]
    assert seeds.within_noise(52.0, 2.0, 51.0, 0.5) is True and seeds.within_noise(52.0, 0.5, 49.0, 0.5) is False


def test_curves_of_a_group_are_a_mean_with_a_band(three_seeds_and_a_gru):
    store, ids = three_seeds_and_a_gru
    runs = [store.get_run(i) for i in ids]
    from lmcore.runs.reports import metrics_frame
    groups = seeds.seed_groups(runs)
    curves = seeds.group_curves(metrics_frame(store, ids), groups, "epoch", "valid_ppl")
    lstm = curves[groups[0].label]
    assert list(lstm["mean"]) == [84, 62, 52] and list(lstm["n"]) == [3, 3, 3]
    np.testing.assert_allclose(lstm["std"], [4, 2, 2])
    fig = group_curves_figure(curves, {g.label: g.run_ids[0] for g in groups})
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 1  # the LSTM's three seeds; the GRU's single run has no band
    assert bands[0].mode == "lines"  # no markers: they had shown as dots in Plotly's own colours
    assert "(3 seeds)" in [t.name for t in fig.data if t.fill != "toself"][0]
    assert max(bands[0].y) == pytest.approx(88) and min(bands[0].y) == pytest.approx(50)


def test_groups_with_the_same_name_but_other_settings_stay_apart(tmp_path, grammar_file):
    store = RunStore(tmp_path / "home")
    a = tiny_config(grammar_file, "lstm")
    b = replace(a, train=replace(a.train, lr=0.02))
    ids = [add(store, a, 50.0, [60, 50]), add(store, b, 55.0, [65, 55])]
    groups = seeds.seed_groups([store.get_run(i) for i in ids])
    assert len(groups) == 2 and groups[0].label != groups[1].label


def test_bits_per_character_compare_a_char_and_a_word_run_of_one_text(tmp_path, grammar_file):
    """Issue 18 part 4: one text, two tokenizers; perplexities per different units, bits per character per the
    same characters: equal when both runs put the same bits on the text."""
    from lmcore.corpus.dataset import CorpusSpec
    from lmcore.corpus.report import text_sizes
    from lmcore.runs.reports import add_bits, distinct_specs, mixed_tokenizers
    store = RunStore(tmp_path / "home")
    word, char = CorpusSpec(str(grammar_file), "word", True), CorpusSpec(str(grammar_file), "char", True)
    sw, sc = text_sizes(word)["valid"], text_sizes(char)["valid"]
    assert sc["chars"] == sw["chars"] == sc["tokens"] and sw["words"] < sw["tokens"] < sw["chars"]
    bits = 2.0 * sw["chars"]  # the same total on the text from both
    ppl_word, ppl_char = 2 ** (bits / sw["tokens"]), 2 ** (bits / sc["tokens"])
    cfg = tiny_config(grammar_file, "lstm")
    ids = [add(store, replace(cfg, corpus=word), ppl_word, [ppl_word]),
           add(store, replace(cfg, corpus=char), ppl_char, [ppl_char])]
    runs = [store.get_run(i) for i in ids]
    table = add_bits(compare_table(runs), [r.cfg.corpus for r in runs], text_sizes)
    assert ppl_word > 10 * ppl_char  # incomparable as perplexities …
    np.testing.assert_allclose(table["valid bits/char"], [2.0, 2.0])  # … equal per character
    assert table["valid bits/word"].iloc[0] == pytest.approx(bits / sw["words"])
    assert mixed_tokenizers(distinct_specs(runs)) and not mixed_tokenizers([word])


def test_compare_shows_three_seeds_as_one_row_and_a_band(lmcore_home, grammar_file):
    """AppTest: three seeds of one LSTM beside a GRU: the group's row says "± … (3 seeds)", the curves figure has
    one band, the lecture's table one LSTM row; "single runs" brings the three lines back."""
    from streamlit.testing.v1 import AppTest

    from .conftest import REPO
    store = RunStore(lmcore_home)
    lstm = tiny_config(grammar_file, "lstm")
    for s, best, curve in [(1, 50.0, [80, 60, 50]), (2, 52.0, [84, 62, 52]), (3, 54.0, [88, 64, 54])]:
        add(store, replace(lstm, train=replace(lstm.train, seed=s)), best, curve)
    add(store, tiny_config(grammar_file, "gru"), 51.0, [70, 55, 51])
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    groups = next(d.value for d in at.dataframe if "group" in d.value.columns)
    assert len(groups) == 2 and groups["valid ppl"].iloc[0] == "52.00 ± 2.00 (3 seeds)"
    assert groups["against the best"].tolist() == ["the best has one seed: spread unknown", "best"]
    fig = at.get("plotly_chart")[0].proto.spec
    assert '"fill":"toself"' in fig.replace(" ", "") and "(3 seeds)" in fig
    lecture = next(d.value for d in at.dataframe if "method" in d.value.columns and "± std" in d.value.columns)
    assert lecture["seeds"].dropna().tolist() == [1, 3] or sorted(lecture["seeds"].dropna()) == [1, 3]
    at.radio(key="cmp_seeds").set_value("runs").run()
    fig = at.get("plotly_chart")[0].proto.spec
    assert '"fill":"toself"' not in fig.replace(" ", "")


def test_the_train_page_queues_each_run_over_its_seeds(lmcore_home, end_job_processes):
    from streamlit.testing.v1 import AppTest

    from .conftest import REPO
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params.update({"corpus": "builtin:agreement", "n": "1", "preset1": "LSTM", "epochs": "1",
                            "seeds": "3", "hid1": "8", "emb1": "8"})
    at.run()
    at.switch_page("views/train.py").run()
    button = next(b for b in at.button if b.label.startswith("Train 1 model"))
    assert button.label == "Train 1 model × 3 seeds (3 runs)"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    runs = RunStore(lmcore_home).list_runs()
    assert len(runs) == 3 and sorted(r.cfg.train.seed for r in runs) == [1111, 1112, 1113]
    assert len({seeds.seed_key(r) for r in runs}) == 1  # one group
