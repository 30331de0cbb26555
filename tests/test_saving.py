"""Results travel: every results class pickles and deep-copies, ``save``/``emstats.load``
round-trip, and ``remove_data`` drops the estimation rows while ``summary()`` and
``predict(newdata)`` keep working."""

from __future__ import annotations

import copy
import dataclasses
import io
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from _fitted import MODELS

import emstats
from emstats.inference.results import EMResults

#: how each model predicts on new data (None: the model has no predict on new data)
PREDICT = {
    "intreg": {"which": "linear"},
    "hetero_tobit": None,        # predicts for the estimation rows only
    "glmm": None,                # no predict yet
    "poisson_mixture": None,     # no regressors: nothing new to predict from
    "mvn": None,
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, new = MODELS[request.param]()
    return request.param, res, new


def _main(res):
    """The results object a selection stands for (its chosen fit)."""
    return res.best if isinstance(res, emstats.GMMSelection) else res


def _predict(name, res, new):
    kw = PREDICT.get(name, {})
    if kw is None or new is None:
        return None
    out = _main(res).predict(new, **kw)
    return np.asarray(out, dtype=float)


def _same(a, b):
    if a is None:
        assert b is None
        return
    np.testing.assert_array_equal(a, b)


def _rows_arrays(obj, n: int) -> list:
    """The arrays in ``obj``'s pickle that have an axis of length ``n`` (data rows)."""
    found = []

    class Spy(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, np.ndarray) and o.ndim and n in o.shape[:2]:
                found.append(o.shape)
            elif isinstance(o, (pd.Series, pd.DataFrame)) and len(o) == n:
                found.append(("pandas", len(o)))
            return None

    Spy(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return found


def test_pickle_and_deepcopy(fitted):
    name, res, new = fitted
    before = _predict(name, res, new)
    text = str(_main(res).summary())
    for other in (pickle.loads(pickle.dumps(res)), copy.deepcopy(res)):
        assert type(other) is type(res)
        main = _main(other)
        pairs = [(main.params, _main(res).params)]
        if isinstance(main, EMResults):
            pairs.append((main.bse, _main(res).bse))
        for a, b in pairs:
            if dataclasses.is_dataclass(a):             # VBGMM's posterior parameters
                a, b = dataclasses.astuple(a), dataclasses.astuple(b)
                assert len(a) == len(b)
                for x, y in zip(a, b, strict=True):
                    np.testing.assert_array_equal(x, y)
            else:
                np.testing.assert_array_equal(a, b)
        # the same table (the date and time lines aside)
        drop = ("Date:", "Time:")
        strip = [ln for ln in str(main.summary()).splitlines() if not ln.startswith(drop)]
        assert strip == [ln for ln in text.splitlines() if not ln.startswith(drop)]
        _same(before, _predict(name, other, new))


def test_save_load_remove_data(fitted, tmp_path):
    name, res, new = fitted
    res = copy.deepcopy(res)
    main = _main(res)
    if not isinstance(main, EMResults):
        pytest.xfail(f"{type(main).__name__} is not an EMResults yet (no save/remove_data)")
    n = main.nobs
    before = _predict(name, res, new)
    table = main.summary().tables[1].as_text()
    path = tmp_path / "fit.pickle"
    res.save(path)
    full = path.stat().st_size
    assert _rows_arrays(res, n)                       # the data are in the full pickle
    model = main.model
    res.save(path, remove_data=True)
    assert res.data_removed and path.stat().st_size < full
    assert _main(res).model is not model and _rows_arrays(model, n)   # the model is intact
    back = emstats.load(path)
    assert back.data_removed
    assert not _rows_arrays(back, n), "per-row data left after remove_data()"
    assert _main(back).summary().tables[1].as_text() == table
    _same(before, _predict(name, back, new))
    with open(path, "rb") as fh:                       # a file object works too
        assert isinstance(emstats.load(fh), type(res))


def test_predict_without_data_is_a_clear_error():
    res, new = MODELS["tobit"]()
    res.remove_data()
    assert np.all(np.isfinite(res.predict(new)))
    with pytest.raises((ValueError, TypeError, AttributeError)):
        res.predict()


def test_a_formula_with_a_stateful_transform_keeps_its_state():
    # center() keeps the training mean: new data are centred by it, not by their own
    df = emstats.datasets.load("affairs")
    res = emstats.tobit("affairs ~ center(age) + C(gender)", df).fit()
    back = pickle.loads(pickle.dumps(res))
    one = df.iloc[[3]]
    expect = (res.params["Intercept"] + res.params["center(age)"]
              * (one["age"].iloc[0] - df["age"].mean())
              + res.params["C(gender)[T.male]"] * (one["gender"].iloc[0] == "male"))
    np.testing.assert_allclose(back.predict(one, which="linear").iloc[0], expect,
                               rtol=1e-12)
    terms = back.model.design_info
    assert terms.levels == {"C(gender)": ("female", "male")}
    # a level not seen in the training data is an error naming it
    bad = one.assign(gender="other")
    with pytest.raises(emstats.DataError, match="other"):
        back.predict(bad)
