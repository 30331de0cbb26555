"""The command line: python -m emstats {demo,datasets,config,fit}."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emstats.__main__ import main


def test_demo_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "emstats", "demo"], capture_output=True,
                         text=True, check=True).stdout
    assert "Tobit Regression Results" in out
    assert "-705.57622" in out  # AER::tobit's log-likelihood
    assert "Average marginal effects" in out


def test_datasets_and_config(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "affairs" in out and "faithful" in out and "earthquakes" in out
    assert main(["config"]) == 0
    assert "kernels:" in capsys.readouterr().out


def test_fit_tobit_from_dataset_and_csv(capsys, tmp_path):
    assert main(["fit", "tobit", "affairs ~ age + rating", "--data", "affairs",
                 "--censor-left", "0", "--censor-right", "4", "--method", "squarem"]) == 0
    out = capsys.readouterr().out
    assert "Right-censored:" in out and "SQUAREM" in out
    import emstats

    path = tmp_path / "a.csv"
    emstats.datasets.load("affairs").to_csv(path, index=False)
    assert main(["fit", "tobit", "affairs ~ age", "--data", str(path),
                 "--censor-left", "none"]) == 0
    assert re.search(r"Uncensored:\s+601\b", capsys.readouterr().out)


@pytest.mark.parametrize("argv,msg", [
    (["fit", "tobit", "affairs ~ nosuch", "--data", "affairs"], "names column 'nosuch'"),
    (["fit", "tobit", "y ~ x", "--data", "missing.csv"], "does not exist"),
    (["fit", "tobit", "y ~ x", "--data", "nosuchdataset"], "Available datasets"),
    (["fit", "tobit", "affairs ~ age", "--data", "affairs", "--censor-left", "99"],
     "censored"),
])
def test_errors_are_one_line_with_status_2(capsys, argv, msg):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("emstats: error:") and msg in err
    assert err.count("\n") == 1


def test_degenerate_data_is_one_line_with_status_2(capsys, tmp_path):
    # a constant response: a clear DataError, not a traceback (issue 16, item 1)
    path = tmp_path / "c.csv"
    path.write_text("y,x\n" + "".join(f"2.0,{i}\n" for i in range(10)))
    assert main(["fit", "tobit", "y ~ 1", "--data", str(path), "--censor-left", "0"]) == 2
    err = capsys.readouterr().err
    assert "the response is constant" in err and err.count("\n") == 1


# --- every model from the command line (issue 15, item 8) ----------------------------------
# The log-likelihoods are those of the same fits through the Python API, whose witnesses are
# in the model tests: mclust (gmm), Zucchini & MacDonald (hmm), lme4 (glmm, full binomial
# log-likelihood), lavaan (mvn), survreg (intreg).
@pytest.mark.parametrize("argv,expected", [
    (["fit", "gmm", "faithful", "--k", "2"], ["Gaussian mixture (VVV, k = 2)", "-1130.26"]),
    (["fit", "gmm", "faithful", "--k", "2", "--covariance", "EEE", "--columns",
      "eruptions,waiting"], ["(EEE, k = 2)", "-1140.18"]),
    (["fit", "hmm", "earthquakes", "--columns", "count", "--k", "2", "--emission", "poisson"],
     ["2-state hidden Markov model", "-341.8787"]),
    (["fit", "glmm", "incidence ~ period", "--data", "cbpp", "--groups", "herd",
      "--trials", "size"], ["-91.98336"]),
    (["fit", "mvn", "nhanes"], ["Multivariate Normal", "-150.8586"]),
    (["fit", "vbgmm", "faithful", "--k", "3"], ["Variational Bayesian", "ELBO"]),
    (["fit", "mixreg", "Patents ~ lgRD", "--data", "patent", "--k", "2", "--family",
      "poisson", "--concomitant", "~ RDS", "--n-init", "3"], ["Mixture of Regressions"]),
    (["fit", "poisson-mixture", "earthquakes", "--column", "count", "--k", "2"],
     ["-360.369"]),
    (["fit", "tobit", "affairs ~ age + rating", "--data", "affairs", "--cov-type", "none"],
     ["Tobit Regression Results"]),
])
def test_fit_every_model(capsys, argv, expected):
    assert main(argv) == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out, text


def test_fit_mixreg_matches_the_api(capsys):
    import emstats

    patent = emstats.datasets.load("patent")
    res = emstats.mixreg("Patents ~ lgRD", patent, k=2, family="poisson",
                         concomitant="~ RDS").fit(n_init=3)
    assert main(["fit", "mixreg", "Patents ~ lgRD", "--data", "patent", "--k", "2",
                 "--family", "poisson", "--concomitant", "~ RDS", "--n-init", "3"]) == 0
    assert f"{res.llf:.4f}"[:-1] in capsys.readouterr().out


def test_fit_from_csv_positional(capsys, tmp_path):
    import emstats

    path = tmp_path / "f.csv"
    emstats.datasets.load("faithful").to_csv(path, index=False)
    assert main(["fit", "gmm", str(path), "--k", "2", "--seed", "1"]) == 0
    assert "-1130.26" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["fit", "gmm", "faithful"], "required: --k"),
    (["fit", "nosuch", "x"], "invalid choice: 'nosuch'"),
    (["fit", "gmm", "faithful", "--k", "2", "--columns", "nope"], "--columns names 'nope'"),
    (["fit", "gmm", "faithful", "--k", "2", "--method", "bogus"], "unknown EM method 'bogus'"),
    (["fit", "gmm", "patent", "--k", "2"], "column 'Company' is not numeric"),
    (["fit", "glmm", "incidence ~ period", "--data", "cbpp", "--groups", "nope"],
     "column 'nope'"),
    (["fit", "hmm", "earthquakes", "--k", "2", "--emission", "poisson"],
     "one column of counts"),
    (["fit", "poisson-mixture", "earthquakes", "--column", "cnt", "--k", "2"],
     "--column 'cnt' is not in the data"),
])
def test_fit_errors_are_one_line_with_status_2(capsys, argv, msg):
    assert main(argv) == 2          # argparse's usage errors too: main returns the status
    err = capsys.readouterr().err
    assert err.startswith("emstats: error:") and msg in err and err.count("\n") == 1, err


def test_usage_errors_exit_with_status_2():
    proc = subprocess.run([sys.executable, "-m", "emstats", "fit", "gmm", "faithful"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("emstats: error:")


HEAVY = ("numpy", "scipy", "pandas", "patsy", "statsmodels", "matplotlib")


def test_import_and_help_load_no_heavy_module():
    """``import emstats`` and building the --help text import none of the numerical
    stack (the public names are loaded on first use), so --help answers at once."""
    code = ("import sys, emstats; from emstats.__main__ import build_parser; "
            "build_parser().format_help(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ""


def test_every_public_name_loads_lazily():
    import emstats

    for name in emstats.__all__:
        assert getattr(emstats, name) is not None, name
    assert set(emstats.__all__) <= set(dir(emstats))
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        emstats.nosuch  # noqa: B018
def test_fit_from_parquet_streamed_and_on_a_local_cluster(capsys, tmp_path):
    """fit gmm FILES --k: Parquet read row group by row group; --workers: a local Dask
    cluster; the same estimates either way."""
    pytest.importorskip("distributed")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import emstats

    df = emstats.datasets.load("faithful")
    for i, part in enumerate((df.iloc[:150], df.iloc[150:])):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       tmp_path / f"f{i}.parquet", row_group_size=50)
    files = sorted(str(p) for p in tmp_path.glob("*.parquet"))
    assert main(["fit", "gmm", *files, "--k", "2", "--n-init", "1"]) == 0
    local = capsys.readouterr().out
    assert "Gaussian mixture (VVV, k = 2)" in local and "No. Observations:" in local
    assert main(["fit", "gmm", str(tmp_path), "--k", "2", "--n-init", "1", "--workers",
                 "1"]) == 0
    dask_out = capsys.readouterr().out
    row = [ln for ln in local.splitlines() if ln.startswith("mean[1](eruptions)")]
    assert row and row[0] in dask_out
    assert main(["fit", "tobit", "waiting ~ eruptions", *files, "--censor-left", "50"]) == 0
    assert "Left-censored:" in capsys.readouterr().out
    assert main(["fit", "gmm", files[0], "--k", "2", "--scheduler", "tcp://x", "--data",
                 "faithful"]) == 2
    assert main(["fit", "gmm", "faithful", "--k", "2", "--workers", "1"]) == 2
    assert "fitted in memory" in capsys.readouterr().err


def test_fit_counts_and_mixreg_from_parquet(capsys, tmp_path):
    """fit zeroinfl / hurdle FILE: --link, --zero-offset and --zero-dist out of core give
    the in-memory fit's table; so does fit mixreg FILE --groups."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    rng = np.random.default_rng(3)
    n = 800
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n),
                       "zo": rng.normal(0, 0.3, n)})
    df["y"] = np.where(rng.random(n) < 0.3, 0, rng.poisson(np.exp(0.4 + 0.5 * df.x)))
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=300)
    csv = tmp_path / "c.csv"
    df.to_csv(csv, index=False)
    for model, opts in (("zeroinfl", ["--link", "probit", "--zero-offset", "zo"]),
                        ("hurdle", ["--zero-dist", "poisson"])):
        assert main(["fit", model, "y ~ x | z", str(path), *opts]) == 0
        streamed = capsys.readouterr().out
        assert main(["fit", model, "y ~ x | z", "--data", str(csv), *opts]) == 0
        memory = capsys.readouterr().out
        rows = [ln for ln in memory.splitlines() if ln.startswith(("count_x", "zero_z"))]
        assert len(rows) == 2 and all(r in streamed for r in rows)
    opts = ["--k", "2", "--family", "poisson", "--groups", "g", "--n-init", "1"]
    df["g"] = np.arange(n) // 4
    df.to_csv(csv, index=False)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=400)
    assert main(["fit", "mixreg", "y ~ x", str(path), *opts]) == 0
    streamed = capsys.readouterr().out
    assert main(["fit", "mixreg", "y ~ x", "--data", str(csv), *opts]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Comp.")]
    assert len(rows) == 4 and all(r in streamed for r in rows)
