"""Model families, one file each."""

from .censored import CensoredRegression, CensoredResults, IntervalRegression, Tobit

__all__ = ["CensoredRegression", "CensoredResults", "IntervalRegression", "Tobit"]

from .hmm import HiddenMarkovModel, HMMParams, HMMResults  # noqa: E402

__all__ += ["HMMParams", "HMMResults", "HiddenMarkovModel"]

from .gmm import GaussianMixture, GMMParams, GMMResults, GMMSelection  # noqa: E402

__all__ += ["GMMParams", "GMMResults", "GMMSelection", "GaussianMixture"]

from .vbgmm import VariationalGaussianMixture, VBGMMResults, VBParams  # noqa: E402

__all__ += ["VBGMMResults", "VBParams", "VariationalGaussianMixture"]

from .glmm import GLMMResults, RandomInterceptLogit  # noqa: E402

__all__ += ["GLMMResults", "RandomInterceptLogit"]
