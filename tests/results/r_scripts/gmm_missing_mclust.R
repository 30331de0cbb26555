# Why the Gaussian mixture with missing values (emstats.gmm(..., missing="em")) has no R
# fixture: R's mclust fits mixtures to complete data only.
#
# Run from the repository root:
#     Rscript tests/results/r_scripts/gmm_missing_mclust.R
# Writes tests/results/gmm_missing_mclust.json: the mclust version, and the error that
# Mclust() and me() (EM from given responsibilities) stop with on faithful with one value
# set to NA.  (mclust's imputeData() imputes under a single multivariate normal through
# the mix package; it fits no mixture.)  The witnesses of emstats' missing-data mixture
# are therefore a direct maximisation of the observed-data likelihood and its numerical
# Hessian, in tests/test_gmm_missing.py.
suppressPackageStartupMessages(library(mclust))
library(jsonlite)

d <- faithful
d[3, 1] <- NA
msg <- function(expr) {
  r <- try(expr, silent = TRUE)
  if (inherits(r, "try-error")) conditionMessage(attr(r, "condition")) else "no error"
}
z <- unmap(rep(1:2, length.out = nrow(d)))
out <- list(
  mclust_version = as.character(packageVersion("mclust")),
  R_version = R.version.string,
  Mclust_error = msg(Mclust(d, G = 2, modelNames = "VVV")),
  me_error = msg(me(d, modelName = "VVV", z = z))
)
write_json(out, "tests/results/gmm_missing_mclust.json", auto_unbox = TRUE, pretty = TRUE)
