# Robust (sandwich) and clustered covariances with R's sandwich package, for the
# cov_type="robust" / "cluster" standard errors of emstats.  Run from the repository root:
#   Rscript tests/results/r_scripts/robust_sandwich.R
# Writes tests/results/robust_sandwich.json.
#
# Conventions of sandwich (version recorded in the JSON), which emstats follows:
#   sandwich(fit)            = B M B / n with bread B = n vcov(fit) and meat
#                              M = crossprod(estfun(fit)) / n: no small-sample factor (HC0);
#   vcovCL(fit, cluster = g) = the same with per-cluster sums of estfun and the factor
#                              G / (G - 1) (type = "HC0" for models other than lm,
#                              cadjust = TRUE; the defaults).
# Cases:
#   tobit      AER::tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating,
#              data = Affairs), left-censored at 0; clusters: occupation (7 levels) and
#              blocks of 4 consecutive rows ((row - 1) %/% 4, 151 clusters)
#   zeroinfl   pscl::zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, bioChemists);
#              clusters: blocks of 5 consecutive rows (183 clusters).  pscl's vcov is the
#              inverse of optim's finite-difference Hessian, so its bread carries that
#              error (a few 1e-4 in the standard errors); the meats (n meat(), n meatCL())
#              are recorded too, and do not depend on it.
source("tests/results/r_scripts/common.R")  # to_json, write_json_file; loads AER
suppressPackageStartupMessages({
  library(sandwich)
  library(pscl)
})

mat <- function(m) list(names = I(colnames(m)), matrix = unname(as.matrix(m)))

data("Affairs", package = "AER")
tob <- tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating,
             data = Affairs, control = fit_control())
blocks4 <- (seq_len(nrow(Affairs)) - 1L) %/% 4L
tobit_case <- list(
  call = "tobit(affairs ~ age + yearsmarried + religiousness + occupation + rating, data = Affairs)",
  coefficients = c(coef(tob), "Log(scale)" = log(tob$scale)),
  vcov = mat(vcov(tob)),
  sandwich = mat(sandwich(tob)),
  cluster_occupation = mat(vcovCL(tob, cluster = Affairs$occupation)),
  cluster_blocks4 = mat(vcovCL(tob, cluster = blocks4)),
  cluster_none = mat(vcovCL(tob)),
  n_clusters = list(occupation = length(unique(Affairs$occupation)),
                    blocks4 = length(unique(blocks4)))
)

data("bioChemists", package = "pscl")
zi <- zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists,
               control = zeroinfl.control(reltol = 1e-14, maxit = 50000))
blocks5 <- (seq_len(nrow(bioChemists)) - 1L) %/% 5L
zi_case <- list(
  call = "zeroinfl(art ~ fem + mar + kid5 + phd + ment | ment, data = bioChemists)",
  coefficients = coef(zi),
  vcov = mat(vcov(zi)),
  sandwich = mat(sandwich(zi)),
  cluster_blocks5 = mat(vcovCL(zi, cluster = blocks5)),
  # the meats alone (n times): free of the finite-difference Hessian in the bread
  meat_n = mat(meat(zi) * zi$n),
  meat_cluster_blocks5_n = mat(meatCL(zi, cluster = blocks5) * zi$n),
  n_clusters = list(blocks5 = length(unique(blocks5)))
)

out <- list(
  versions = list(R = R.version.string,
                  sandwich = as.character(packageVersion("sandwich")),
                  AER = as.character(packageVersion("AER")),
                  pscl = as.character(packageVersion("pscl"))),
  tobit = tobit_case,
  zeroinfl = zi_case
)
write_json_file(out, "tests/results/robust_sandwich.json")
